"""The contacts API. Every view declares its permissions; data is scoped by the selectors."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsOperatorOrAdmin
from contacts import selectors, services
from contacts.serializers import (
    ContactEventSerializer,
    ContactSerializer,
    ContactUpdateSerializer,
    GroupChatSerializer,
    GroupMemberSerializer,
    StaffSerializer,
)
from scrm.queues import Queue


class ContactListApi(ListAPIView):
    """Contacts the caller may see; ``?external_userid=`` finds one by WeCom id."""

    permission_classes = [IsAuthenticated]
    serializer_class = ContactSerializer

    @extend_schema(parameters=[
        OpenApiParameter("external_userid", str), OpenApiParameter("search", str),
        OpenApiParameter("staff", str, description="userid of a staff member"),
        OpenApiParameter("customers_only", bool), OpenApiParameter("cursor", str),
        OpenApiParameter("page_size", int),
    ])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        q = self.request.query_params
        return selectors.contact_list(
            user=self.request.user,
            search=q.get("search", "").strip(),
            external_userid=q.get("external_userid", "").strip(),
            staff_userid=q.get("staff", "").strip(),
            only_customers=q.get("customers_only") in ("1", "true"),
        )


class ContactDetailApi(RetrieveAPIView):
    """GET one contact; PATCH its time zone. Admins and operators reach every contact, a guide only the
    customers they follow (anyone else's is a 404, as for GET)."""

    permission_classes = [IsAuthenticated]
    serializer_class = ContactSerializer

    def get_object(self):
        return selectors.contact_get_for_user(user=self.request.user, contact_id=self.kwargs["pk"])

    @extend_schema(request=ContactUpdateSerializer, responses=ContactSerializer)
    def patch(self, request, pk: int):
        contact = self.get_object()
        data = ContactUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        contact = services.contact_time_zone_set(contact=contact, time_zone=data.validated_data["time_zone"])
        return Response(ContactSerializer(contact, context={"request": request}).data)


class ContactEventListApi(ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = ContactEventSerializer

    def get_queryset(self):
        contact = selectors.contact_get_for_user(user=self.request.user, contact_id=self.kwargs["pk"])
        return contact.events.select_related("staff", "chat")


class StaffListApi(ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = StaffSerializer
    pagination_class = None

    def get_queryset(self):
        return selectors.staff_list(user=self.request.user)


class GroupChatListApi(ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = GroupChatSerializer

    def get_queryset(self):
        q = self.request.query_params
        return selectors.group_chat_list(user=self.request.user, search=q.get("search", "").strip(),
                                         status=q.get("status", "").strip())


class GroupChatDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=GroupChatSerializer)
    def get(self, request, pk: int):
        chat = selectors.group_chat_get_for_user(user=request.user, chat_pk=pk)
        members = list(selectors.group_members(user=request.user, chat=chat))
        visible = selectors.contact_visible_ids(user=request.user,
                                                contact_ids=[m.contact_id for m in members if m.contact_id])
        data = GroupChatSerializer(chat, context={"request": request}).data
        data["members"] = GroupMemberSerializer(members, many=True, context={"visible_contact_ids": visible}).data
        return Response(data)


class WeComSyncApi(APIView):
    """Start a full sync from WeCom in the background (operators and admins)."""

    permission_classes = [IsOperatorOrAdmin]

    class OutputSerializer(serializers.Serializer):
        queued = serializers.BooleanField()

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request):
        from django.conf import settings

        from contacts.tasks import corp_sync_from_wecom

        corp_sync_from_wecom.apply_async(args=[settings.WECOM_CORP_ID], queue=Queue.BULK.value)
        return Response({"queued": True}, status=202)
