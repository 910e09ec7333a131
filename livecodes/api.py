"""The live-codes API: codes, their pools and their stats. Operators and admins only."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsOperatorOrAdmin
from contacts.models import Corp
from livecodes import selectors, services
from livecodes.models import LiveCode, LiveCodeTarget


class LiveCodeSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = LiveCode
        fields = ["id", "kind", "name", "slug", "state", "status", "mode", "title", "description", "campaign",
                  "fallback", "skip_verify", "welcome_text", "low_capacity", "publish_error", "published_at",
                  "created_at", "url"]

    def get_url(self, obj) -> str:
        return f"/l/{obj.slug}"


class LiveCodeCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=LiveCode.Kind.choices)
    name = serializers.CharField(max_length=64)
    state = serializers.CharField(max_length=30, required=False, allow_blank=True, default="")
    mode = serializers.ChoiceField(choices=LiveCode.Mode.choices, default=LiveCode.Mode.FILL)
    title = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    welcome_text = serializers.CharField(required=False, allow_blank=True, default="")


class TargetSerializer(serializers.ModelSerializer):
    staff_userid = serializers.CharField(source="staff.userid", default=None, read_only=True)
    chat_id = serializers.CharField(source="chat.chat_id", default=None, read_only=True)

    class Meta:
        model = LiveCodeTarget
        fields = ["id", "kind", "label", "option", "position", "enabled", "weight", "region", "staff_userid",
                  "is_backup", "daily_cap", "schedule", "chat_id", "qr_text", "expires_at", "cap", "joins", "scans"]


class LiveCodeListApi(APIView):
    permission_classes = [IsOperatorOrAdmin]

    @extend_schema(responses=LiveCodeSerializer(many=True))
    def get(self, request):
        return Response(LiveCodeSerializer(selectors.livecode_list(user=request.user), many=True).data)

    @extend_schema(request=LiveCodeCreateSerializer, responses={201: LiveCodeSerializer})
    def post(self, request):
        data = LiveCodeCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        corp = Corp.objects.order_by("id").first()
        if corp is None:
            raise serializers.ValidationError({"corp": "no WeCom corp is known yet"})
        values = dict(data.validated_data)
        code = services.livecode_create(corp=corp, owner=request.user, **values)
        return Response(LiveCodeSerializer(code).data, status=201)


class LiveCodeDetailApi(RetrieveAPIView):
    permission_classes = [IsOperatorOrAdmin]
    serializer_class = LiveCodeSerializer

    def get_object(self):
        return selectors.livecode_get(user=self.request.user, code_id=self.kwargs["pk"])


class LiveCodeTargetsApi(ListAPIView):
    permission_classes = [IsOperatorOrAdmin]
    serializer_class = TargetSerializer
    pagination_class = None

    def get_queryset(self):
        code = selectors.livecode_get(user=self.request.user, code_id=self.kwargs["pk"])
        return code.targets.select_related("staff", "chat").order_by("position", "id")


class StatsDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    scans = serializers.IntegerField()
    unique_visitors = serializers.IntegerField(source="visitors")
    adds = serializers.IntegerField()
    joins = serializers.IntegerField()
    lost_1d = serializers.IntegerField()
    lost_7d = serializers.IntegerField()
    conversion = serializers.FloatField(allow_null=True)


class LiveCodeStatsApi(APIView):
    """Per day: scans, unique visitors, adds and joins, and losses within 1 and 7 days."""

    permission_classes = [IsOperatorOrAdmin]

    @extend_schema(parameters=[OpenApiParameter("days", int), OpenApiParameter("target", int)],
                   responses=StatsDaySerializer(many=True))
    def get(self, request, pk: int):
        code = selectors.livecode_get(user=request.user, code_id=pk)
        try:
            days = max(1, min(int(request.query_params.get("days", 30)), 366))
            target = request.query_params.get("target")
            target_id = int(target) if target else None
        except ValueError as exc:
            raise serializers.ValidationError({"days": "must be a number"}) from exc
        rows = selectors.stats_by_day(code=code, days=days, target_id=target_id)
        return Response({"code": code.pk, "days": StatsDaySerializer(rows, many=True).data})
