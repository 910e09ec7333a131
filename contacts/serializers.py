from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from contacts.models import Contact, ContactEvent, FollowRelation, GroupChat, GroupMember, Staff
from contacts.selectors import phones_for
from contacts.timezones import time_zone_clean


class StaffSerializer(serializers.ModelSerializer):
    class Meta:
        model = Staff
        fields = ["id", "userid", "name", "status"]


class FollowRelationSerializer(serializers.ModelSerializer):
    staff = StaffSerializer(read_only=True)
    remark_mobiles = serializers.SerializerMethodField()

    class Meta:
        model = FollowRelation
        fields = ["staff", "remark", "description", "remark_corp_name", "remark_mobiles", "add_way", "state",
                  "wecom_tags", "is_active", "added_at", "deleted_by_customer_at", "deleted_by_staff_at",
                  "delete_source"]

    def get_remark_mobiles(self, relation) -> list[str]:
        return phones_for(user=self.context["request"].user, numbers=relation.remark_mobiles)


class ContactSerializer(serializers.ModelSerializer):
    follow_relations = FollowRelationSerializer(source="relations", many=True, read_only=True)

    class Meta:
        model = Contact
        fields = ["id", "external_userid", "name", "avatar", "type", "gender", "unionid", "corp_name", "position",
                  "time_zone", "first_added_at", "active_relations", "created_at", "updated_at", "follow_relations"]


class ContactUpdateSerializer(serializers.Serializer):
    """Input of ``PATCH /api/contacts/<id>/``: what staff may set on a contact."""

    time_zone = serializers.CharField(allow_blank=True, trim_whitespace=True,
                                      help_text="IANA name such as Asia/Tokyo; blank: the corp's time zone")

    def validate_time_zone(self, value: str) -> str:
        try:
            return time_zone_clean(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc


class ContactEventSerializer(serializers.ModelSerializer):
    staff = serializers.SlugRelatedField(slug_field="userid", read_only=True)
    chat = serializers.SlugRelatedField(slug_field="chat_id", read_only=True)

    class Meta:
        model = ContactEvent
        fields = ["id", "kind", "occurred_at", "staff", "chat", "data"]


class GroupChatSerializer(serializers.ModelSerializer):
    owner = StaffSerializer(read_only=True)

    class Meta:
        model = GroupChat
        fields = ["id", "chat_id", "name", "owner", "owner_userid", "notice", "status", "member_count",
                  "wecom_created_at", "dismissed_at", "synced_at"]


class GroupMemberSerializer(serializers.ModelSerializer):
    contact_id = serializers.SerializerMethodField()

    class Meta:
        model = GroupMember
        fields = ["member_id", "member_type", "name", "group_nickname", "joined_at", "join_scene", "state",
                  "left_at", "contact_id"]

    def get_contact_id(self, member) -> int | None:
        visible = self.context.get("visible_contact_ids")
        if member.contact_id and (visible is None or member.contact_id in visible):
            return member.contact_id
        return None
