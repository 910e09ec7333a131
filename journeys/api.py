"""The journeys API: custom events in, reports out. Thin: parse, call one service or selector."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsOperatorOrAdmin
from journeys import selectors, services
from journeys.models import Journey


def _corp():
    from contacts.services import corp_get_or_create

    return corp_get_or_create(corp_id=settings.WECOM_CORP_ID)


class EventInSerializer(serializers.Serializer):
    external_userid = serializers.CharField(max_length=64)
    type = serializers.RegexField(r"^[a-z0-9_.:-]{1,48}$", help_text="lower-case letters, digits, _ . : -")
    properties = serializers.DictField(required=False, default=dict)
    occurred_at = serializers.DateTimeField(required=False)
    dedup_key = serializers.CharField(max_length=100, required=False)


class EventApi(APIView):
    """Record a custom event for a known customer; it may start or end journeys. Unknown customer → 404."""

    permission_classes = [IsOperatorOrAdmin]

    @extend_schema(request=EventInSerializer, responses={201: None})
    def post(self, request):
        data = EventInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        contact = services.custom_event_record(
            corp=_corp(), external_userid=v["external_userid"], type=v["type"], properties=v["properties"],
            occurred_at=v.get("occurred_at"), dedup_key=f"api:{v['dedup_key']}" if v.get("dedup_key") else None)
        if contact is None:
            return Response({"message": "Unknown customer", "extra": {"external_userid": v["external_userid"]}},
                            status=404)
        return Response({"contact_id": contact.pk, "type": v["type"]}, status=201)


class JourneyReportApi(APIView):
    """Per-journey and per-step figures: entered, tasks, staff confirmation, reached, conversions, exits, lift."""

    permission_classes = [IsOperatorOrAdmin]

    def get(self, request, pk: int):
        journey = get_object_or_404(Journey, pk=pk)
        return Response(selectors.journey_report(journey=journey))
