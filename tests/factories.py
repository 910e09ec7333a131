"""factory_boy factories shared by every test package."""

import itertools

import factory

from accounts.models import User
from contacts.models import Contact, Corp, FollowRelation, GroupChat, GroupMember, Staff
from scrm.clock import now

_seq = itertools.count(1)


class CorpFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Corp
        django_get_or_create = ("corp_id",)

    corp_id = "wwTESTCORP0000001"
    name = "测试企业"


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Staff

    corp = factory.SubFactory(CorpFactory)
    userid = factory.Sequence(lambda n: f"staff{n}")
    name = factory.Sequence(lambda n: f"员工{n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    corp = factory.SubFactory(CorpFactory)
    external_userid = factory.Sequence(lambda n: f"wmTest{n:026d}")
    name = factory.Sequence(lambda n: f"客户{n}")


class FollowRelationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FollowRelation
        skip_postgeneration_save = True

    contact = factory.SubFactory(ContactFactory)
    staff = factory.SubFactory(StaffFactory)
    added_at = factory.LazyFunction(now)
    status_changed_at = factory.LazyAttribute(lambda o: o.added_at)
    is_active = True

    @factory.post_generation
    def recount(obj, create, extracted, **kwargs):
        if create:
            Contact.objects.filter(pk=obj.contact_id).update(
                active_relations=FollowRelation.objects.filter(contact_id=obj.contact_id, is_active=True).count()
            )


class GroupChatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroupChat

    corp = factory.SubFactory(CorpFactory)
    chat_id = factory.Sequence(lambda n: f"wrTest{n:026d}")
    name = factory.Sequence(lambda n: f"客户群{n}")


class GroupMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroupMember

    chat = factory.SubFactory(GroupChatFactory)
    contact = factory.SubFactory(ContactFactory)
    member_id = factory.LazyAttribute(lambda o: o.contact.external_userid)
    member_type = GroupMember.Type.EXTERNAL
    joined_at = factory.LazyFunction(now)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    role = User.Role.OPERATOR
    password = factory.PostGenerationMethodCall("set_password", "pw-123456")

    @factory.post_generation
    def persist(obj, create, extracted, **kwargs):
        if create:
            obj.save()
