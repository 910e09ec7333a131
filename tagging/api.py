"""The tagging API: tag groups, tags, contact tags, rules, segments, orders, entitlements, bulk jobs.

Every view declares its permissions; reads are scoped by selectors (guides: their own customers only).
Expression format (rules and segments): see tagging/rules.py and the README section "Tags, rules, segments".
"""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsOperatorOrAdmin
from contacts import business
from contacts import selectors as contact_selectors
from scrm.csvexport import csv_response
from scrm.errors import ApplicationError
from tagging import bulk, recompute, segments, selectors, services
from tagging.models import BulkJob, ContactTag, Dimension, Segment, Tag, TagGroup, TagRule

EXPRESSION_HELP = (
    "Boolean expression: {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}}, {\"tag\": <id>}, "
    "{\"attr\": \"tags\", \"op\": \"contains\"|\"in\", \"value\": [ids]}, "
    "{\"attr\": <fact>, \"op\": eq|ne|gt|gte|lt|lte|in|contains|exists|within_days, \"value\": ...}, "
    "{\"event\": <kind>, \"within_days\": N, \"op\": gte, \"value\": 1}; any condition may add \"negate\": true."
)


def _corp():
    from contacts.services import corp_get_or_create

    return corp_get_or_create(corp_id=settings.WECOM_CORP_ID)


class ExpressionField(serializers.JSONField):
    class Meta:
        swagger_schema_fields = {"description": EXPRESSION_HELP}


# --- tag groups and tags -----------------------------------------------------------------------------------------
class TagSerializer(serializers.ModelSerializer):
    dimension = serializers.CharField(source="group.dimension", read_only=True)

    class Meta:
        model = Tag
        fields = ["id", "group", "dimension", "name", "color", "order", "sync_to_wecom", "wecom_tag_id",
                  "sync_status", "sync_error"]


class TagGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = TagGroup
        fields = ["id", "dimension", "name", "order", "wecom_group_id"]


class TagGroupListApi(APIView):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        dimension = serializers.ChoiceField(choices=Dimension.choices)
        name = serializers.CharField(max_length=64)
        order = serializers.IntegerField(required=False, min_value=0)

    @extend_schema(responses=TagGroupSerializer(many=True))
    def get(self, request):
        return Response(TagGroupSerializer(selectors.tag_groups_list(), many=True).data)

    @extend_schema(request=InputSerializer, responses=TagGroupSerializer)
    def post(self, request):
        _require_operator(request)
        data = _valid(self.InputSerializer, request.data)
        group = services.tag_group_create(corp=_corp(), **data)
        return Response(TagGroupSerializer(group).data, status=201)


class TagGroupDetailApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    class InputSerializer(serializers.Serializer):
        dimension = serializers.ChoiceField(choices=Dimension.choices, required=False)
        name = serializers.CharField(max_length=64, required=False)
        order = serializers.IntegerField(required=False, min_value=0)

    @extend_schema(request=InputSerializer, responses=TagGroupSerializer)
    def patch(self, request, pk: int):
        group = get_object_or_404(TagGroup, pk=pk)
        group = services.tag_group_update(group=group, **_valid(self.InputSerializer, request.data))
        return Response(TagGroupSerializer(group).data)


class TagListApi(APIView):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        group = serializers.IntegerField()
        name = serializers.CharField(max_length=64)
        color = serializers.CharField(required=False, allow_blank=True)
        order = serializers.IntegerField(required=False, min_value=0)
        sync_to_wecom = serializers.BooleanField(required=False, default=False)

    @extend_schema(responses=TagSerializer(many=True))
    def get(self, request):
        tags = list(selectors.tags_list())
        counts = selectors.tag_counts(user=request.user)
        data = TagSerializer(tags, many=True).data
        for row in data:
            row["count"] = counts.get(row["id"], 0)
        return Response(data)

    @extend_schema(request=InputSerializer, responses=TagSerializer)
    def post(self, request):
        _require_operator(request)
        data = _valid(self.InputSerializer, request.data)
        group = get_object_or_404(TagGroup, pk=data.pop("group"))
        tag = services.tag_create(group=group, **data)
        return Response(TagSerializer(tag).data, status=201)


class TagDetailApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=64, required=False)
        color = serializers.CharField(required=False)
        order = serializers.IntegerField(required=False, min_value=0)
        sync_to_wecom = serializers.BooleanField(required=False)

    @extend_schema(request=InputSerializer, responses=TagSerializer)
    def patch(self, request, pk: int):
        tag = get_object_or_404(Tag, pk=pk)
        tag = services.tag_update(tag=tag, **_valid(self.InputSerializer, request.data))
        return Response(TagSerializer(tag).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int):
        services.tag_delete(tag=get_object_or_404(Tag, pk=pk))
        return Response(status=204)


class TagMergeApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    class InputSerializer(serializers.Serializer):
        into = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, pk: int):
        source = get_object_or_404(Tag, pk=pk)
        target_id = _valid(self.InputSerializer, request.data)["into"]
        target = Tag.objects.filter(pk=target_id).first()
        if target is None:
            raise ApplicationError(f"Unknown tag ids: {target_id}", {"unknown_tag_ids": [target_id]})
        return Response({"moved": services.tag_merge(source=source, target=target), "into": target.pk})


class TagSyncApi(APIView):
    """Read WeCom's corp tags now (in the background, on the wecom queue)."""

    permission_classes = [IsOperatorOrAdmin]

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request):
        from tagging.tasks import corp_tags_pull

        corp_tags_pull.delay(settings.WECOM_CORP_ID)
        return Response({"queued": True}, status=202)


# --- contact tags ------------------------------------------------------------------------------------------------
class ContactTagSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="tag.name")
    dimension = serializers.CharField(source="tag.group.dimension")
    set_by = serializers.CharField(source="set_by.username", default=None)

    class Meta:
        model = ContactTag
        fields = ["tag", "name", "dimension", "source", "source_ref", "set_by", "created_at", "expires_at"]


class ContactTagsApi(APIView):
    """The tags of one contact with provenance; guides may tag their own customers."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        tag_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False, max_length=200)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    @extend_schema(responses=ContactTagSerializer(many=True))
    def get(self, request, pk: int):
        contact = contact_selectors.contact_get_for_user(user=request.user, contact_id=pk)
        links = ContactTag.objects.filter(contact=contact).select_related("tag__group", "set_by")
        return Response(ContactTagSerializer(links, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, pk: int):
        contact = contact_selectors.contact_get_for_user(user=request.user, contact_id=pk)
        data = _valid(self.InputSerializer, request.data)
        services.tags_check_exist(tag_ids=data["tag_ids"])
        created = services.tags_apply(contact_ids=[contact.pk], tag_ids=data["tag_ids"],
                                      source=ContactTag.Source.MANUAL, set_by=request.user,
                                      expires_at=data.get("expires_at"))
        return Response({"created": created}, status=201)


class ContactTagDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int, tag_id: int):
        contact = contact_selectors.contact_get_for_user(user=request.user, contact_id=pk)
        services.tags_remove(contact_ids=[contact.pk], tag_ids=[tag_id])
        return Response(status=204)


# --- rules ---------------------------------------------------------------------------------------------------------
class TagRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = TagRule
        fields = ["id", "name", "tag", "condition", "is_active", "preset", "last_run_at", "last_matched"]


class TagRuleListApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=64)
        tag = serializers.IntegerField()
        condition = ExpressionField(help_text=EXPRESSION_HELP)
        is_active = serializers.BooleanField(required=False, default=True)

    @extend_schema(responses=TagRuleSerializer(many=True))
    def get(self, request):
        return Response(TagRuleSerializer(TagRule.objects.all(), many=True).data)

    @extend_schema(request=InputSerializer, responses=TagRuleSerializer)
    def post(self, request):
        data = _valid(self.InputSerializer, request.data)
        tag = _tag_or_400(data.pop("tag"))
        rule = recompute.tag_rule_create(tag=tag, **data)
        return Response(TagRuleSerializer(rule).data, status=201)


class TagRuleDetailApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=64, required=False)
        condition = ExpressionField(required=False, help_text=EXPRESSION_HELP)
        is_active = serializers.BooleanField(required=False)

    @extend_schema(responses=TagRuleSerializer)
    def get(self, request, pk: int):
        return Response(TagRuleSerializer(get_object_or_404(TagRule, pk=pk)).data)

    @extend_schema(request=InputSerializer, responses=TagRuleSerializer)
    def patch(self, request, pk: int):
        rule = recompute.tag_rule_update(rule=get_object_or_404(TagRule, pk=pk),
                                         **_valid(self.InputSerializer, request.data))
        return Response(TagRuleSerializer(rule).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int):
        recompute.tag_rule_delete(rule=get_object_or_404(TagRule, pk=pk))
        return Response(status=204)


class TagRuleValidateApi(APIView):
    """Validate a condition and say how many customers it would match now."""

    permission_classes = [IsOperatorOrAdmin]

    class InputSerializer(serializers.Serializer):
        condition = ExpressionField(help_text=EXPRESSION_HELP)
        tag = serializers.IntegerField(required=False)

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        data = _valid(self.InputSerializer, request.data)
        tag = _tag_or_400(data["tag"]) if data.get("tag") else None
        return Response({"valid": True, "count": recompute.tag_rule_would_match(
            user=request.user, condition=data["condition"], tag=tag)})


class TagRulePresetApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    class InputSerializer(serializers.Serializer):
        preset = serializers.ChoiceField(choices=recompute.PRESETS)
        threshold = serializers.IntegerField(required=False, default=500, min_value=1)

    @extend_schema(request=InputSerializer, responses=TagRuleSerializer(many=True))
    def post(self, request):
        data = _valid(self.InputSerializer, request.data)
        rules = recompute.tag_rule_presets_install(corp=_corp(), **data)
        return Response(TagRuleSerializer(rules, many=True).data, status=201)


# --- segments ------------------------------------------------------------------------------------------------------
class ExpressionInput(serializers.Serializer):
    expression = ExpressionField(help_text=EXPRESSION_HELP)


class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["id", "name", "expression", "created_at", "updated_at"]


class SegmentCountApi(APIView):
    """``{"expression": …}`` → ``{"count": N}``; guides count only their own customers."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=ExpressionInput, responses={200: OpenApiTypes.OBJECT},
                   description=EXPRESSION_HELP)
    def post(self, request):
        data = _valid(ExpressionInput, request.data)
        return Response({"count": segments.segment_count(user=request.user, expression=data["expression"])})


class SegmentMembersApi(APIView):
    """Member contact ids in ascending order, keyset-paged with ``after``."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(ExpressionInput):
        after = serializers.IntegerField(required=False, default=0, min_value=0)
        limit = serializers.IntegerField(required=False, default=1000, min_value=1, max_value=10_000)

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        data = _valid(self.InputSerializer, request.data)
        ids = []
        for contact_id in segments.segment_member_ids(user=request.user, expression=data["expression"],
                                                      batch=data["limit"], after=data["after"]):
            ids.append(contact_id)
            if len(ids) == data["limit"]:
                break
        return Response({"ids": ids, "next_after": ids[-1] if len(ids) == data["limit"] else None})


class TagContactsApi(APIView):
    """The contacts carrying a tag that the caller may see (guides: their own customers), newest first,
    keyset-paged: pass ``next_after`` back as ``after``. Other contact-list filters: ``search``, ``staff``,
    ``customers_only``."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        after = serializers.IntegerField(required=False, min_value=1)
        limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=200)
        search = serializers.CharField(required=False, default="", max_length=128, allow_blank=True)
        staff = serializers.CharField(required=False, default="", max_length=64, allow_blank=True)
        customers_only = serializers.BooleanField(required=False, default=False)

    @extend_schema(parameters=[InputSerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request, pk: int):
        from contacts.serializers import ContactSerializer

        tag = get_object_or_404(Tag, pk=pk)
        data = _valid(self.InputSerializer, request.query_params)
        contacts = contact_selectors.contact_list(user=request.user, search=data["search"].strip(),
                                                  staff_userid=data["staff"].strip(),
                                                  only_customers=data["customers_only"])
        page = selectors.keyset_page_in(selectors.tag_members(user=request.user, tag_id=tag.pk), contacts,
                                        after=data.get("after"), size=data["limit"])
        return Response({"results": ContactSerializer(page.items, many=True, context={"request": request}).data,
                         "next_after": page.next_after})


class SegmentListApi(APIView):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=64)
        expression = ExpressionField(help_text=EXPRESSION_HELP)

    @extend_schema(responses=SegmentSerializer(many=True))
    def get(self, request):
        return Response(SegmentSerializer(Segment.objects.all(), many=True).data)

    @extend_schema(request=InputSerializer, responses=SegmentSerializer)
    def post(self, request):
        _require_operator(request)
        data = _valid(self.InputSerializer, request.data)
        segments.expression_parse(data["expression"])
        segment = Segment.objects.create(created_by=request.user, **data)
        return Response(SegmentSerializer(segment).data, status=201)


class SegmentExportApi(APIView):
    """CSV of every member the caller may see."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: int):
        segment = get_object_or_404(Segment, pk=pk)
        segments.expression_parse(segment.expression)
        return csv_response(segments.segment_export_rows(user=request.user, expression=segment.expression),
                            filename=f"segment-{segment.pk}.csv")


# --- orders and entitlements -------------------------------------------------------------------------------------
class OrderInput(serializers.Serializer):
    external_id = serializers.CharField(max_length=64)
    contact_id = serializers.IntegerField(required=False)
    external_userid = serializers.CharField(max_length=64, required=False)
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    items = serializers.ListField(child=serializers.JSONField(), required=False, default=list)
    paid_at = serializers.DateTimeField()


class EntitlementInput(serializers.Serializer):
    external_id = serializers.CharField(max_length=64)
    contact_id = serializers.IntegerField(required=False)
    external_userid = serializers.CharField(max_length=64, required=False)
    kind = serializers.ChoiceField(choices=["coupon", "course", "membership"])
    name = serializers.CharField(max_length=128, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=["active", "used", "expired", "cancelled"], required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


def _one_or_many(serializer_class, data) -> list[dict]:
    many = isinstance(data, list)
    if many and not 1 <= len(data) <= 1000:
        raise ApplicationError("Send 1 to 1000 objects per request (use the CSV import for more).")
    serializer = serializer_class(data=data, many=many)
    serializer.is_valid(raise_exception=True)
    return list(serializer.validated_data) if many else [serializer.validated_data]


def _write_response(result) -> Response:
    status = 400 if result.errors and not (result.created or result.updated) else 201
    body = {"created": result.created, "updated": result.updated, "errors": result.errors}
    if status == 400:
        return Response({"message": "No object was accepted", "extra": body}, status=400)
    return Response(body, status=status)


class OrderCreateApi(APIView):
    """One order object or a list; re-sending an external_id updates the order."""

    permission_classes = [IsOperatorOrAdmin]

    @extend_schema(request=OrderInput(many=True), responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        rows = _one_or_many(OrderInput, request.data)
        return _write_response(business.orders_record(corp=_corp(), rows=rows))


class EntitlementCreateApi(APIView):
    """One entitlement object or a list; re-sending an external_id updates it."""

    permission_classes = [IsOperatorOrAdmin]

    @extend_schema(request=EntitlementInput(many=True), responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        rows = _one_or_many(EntitlementInput, request.data)
        return _write_response(business.entitlements_record(corp=_corp(), rows=rows))


# --- bulk jobs -----------------------------------------------------------------------------------------------------
class BulkJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = BulkJob
        fields = ["id", "kind", "status", "total", "processed", "accepted", "rejected", "percent", "last_error",
                  "created_at", "finished_at"]


class BulkTagApi(APIView):
    """Tag or untag selected contacts (``contact_ids``) or a whole segment (``expression``) in the background."""

    permission_classes = [IsOperatorOrAdmin]

    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=["tag", "untag"])
        tag_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False, max_length=50)
        contact_ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=100_000)
        expression = ExpressionField(required=False, help_text=EXPRESSION_HELP)

    @extend_schema(request=InputSerializer, responses={202: BulkJobSerializer})
    def post(self, request):
        data = _valid(self.InputSerializer, request.data)
        job = bulk.bulk_tag_start(user=request.user, **data)
        return Response(BulkJobSerializer(job).data, status=202)


class ImportApi(APIView):
    """Upload a CSV (UTF-8 or GBK) of contacts, orders or entitlements; imported in the background."""

    permission_classes = [IsOperatorOrAdmin]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=["contacts", "orders", "entitlements"])
        file = serializers.FileField()

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={202: BulkJobSerializer})
    def post(self, request):
        data = _valid(self.InputSerializer, request.data)
        job = bulk.import_start(user=request.user, kind=data["kind"], upload=data["file"])
        return Response(BulkJobSerializer(job).data, status=202)


class BulkJobDetailApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    @extend_schema(responses=BulkJobSerializer)
    def get(self, request, pk: int):
        return Response(BulkJobSerializer(get_object_or_404(BulkJob, pk=pk)).data)


class BulkJobReportApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, pk: int):
        job = get_object_or_404(BulkJob, pk=pk)
        return csv_response(bulk.job_report_rows(job=job), filename=f"job-{job.pk}-rejected.csv")


# --- helpers -----------------------------------------------------------------------------------------------------
def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _require_operator(request) -> None:
    from rest_framework.exceptions import PermissionDenied

    if not IsOperatorOrAdmin().has_permission(request, None):
        raise PermissionDenied("Only operators and admins may do this.")


def _tag_or_400(tag_id: int) -> Tag:
    tag = Tag.objects.filter(pk=tag_id).first()
    if tag is None:
        raise ApplicationError(f"Unknown tag ids: {tag_id}", {"unknown_tag_ids": [tag_id]})
    return tag
