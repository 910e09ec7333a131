"""Reads for live codes: the routing snapshot, lists, stats, duplicate members, alerts."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from livecodes import routing
from livecodes.hotpath import Shown, Snapshot
from livecodes.models import (
    IMAGE_QR_DEFAULT_CAP,
    Alert,
    Conversion,
    DailyStat,
    JoinWay,
    LiveCode,
    LiveCodeTarget,
)
from scrm.clock import now


def _member(target: LiveCodeTarget, *, in_window: bool) -> routing.Member:
    T = LiveCodeTarget.Kind
    if target.kind == T.STAFF:
        entity = f"staff:{target.staff.userid}"
        limit, counter = target.daily_cap, routing.ADDS_TODAY
        enabled = target.enabled and bool(target.wecom_qr_url)
    elif target.kind == T.WECOM_GROUP:
        entity = f"chat:{target.chat.chat_id}"
        limit, counter = target.cap or IMAGE_QR_DEFAULT_CAP, routing.JOINS
        enabled = target.enabled and in_window and target.chat.status == "active"
    else:
        entity = f"img:{target.qr_text or target.image_sha}"
        limit, counter = target.cap or IMAGE_QR_DEFAULT_CAP, routing.SCANS
        enabled = target.enabled and bool(target.image_sha)
    return routing.Member(
        id=target.pk, kind=target.kind, entity=entity, position=target.position, enabled=enabled,
        weight=target.weight, limit=limit, counter=counter,
        expires_at=target.expires_at.timestamp() if target.expires_at else None,
        backup=target.is_backup, schedule=routing.schedule_parse(target.schedule),
        regions=tuple(r.strip() for r in target.region.replace("，", ",").split(",") if r.strip()),
        lat=target.latitude, lng=target.longitude, option_id=target.option_id,
    )


def snapshot_build(*, slug: str) -> Snapshot | None:
    code = LiveCode.objects.filter(slug=slug).select_related("fallback").first()
    if code is None:
        return None
    targets = list(code.targets.select_related("staff", "chat").order_by("position", "id"))
    windows = {}
    for way in JoinWay.objects.filter(code=code):
        for chat_id in way.chat_ids:
            windows[(way.option_id, chat_id)] = way.qr_url
    members, shown = [], {}
    for t in targets:
        qr = ""
        if t.kind == LiveCodeTarget.Kind.STAFF:
            qr = t.wecom_qr_url
        elif t.kind == LiveCodeTarget.Kind.WECOM_GROUP:
            qr = windows.get((t.option_id, t.chat.chat_id), "")
        elif t.image_sha:
            qr = reverse("livecodes:target_image", args=[code.slug, t.pk]) + f"?v={t.image_sha[:12]}"
        members.append(_member(t, in_window=bool(qr)))
        shown[t.pk] = Shown(label=str(t), qr_url=qr)
    return Snapshot(
        spec=routing.CodeSpec(id=code.pk, kind=code.kind, mode=code.mode, active=code.is_active,
                              members=tuple(members)),
        slug=code.slug, name=code.name, title=code.title or code.name, description=code.description,
        has_banner=bool(code.banner), scope=f"c{code.campaign_id}" if code.campaign_id else f"k{code.pk}",
        fallback_slug=code.fallback.slug if code.fallback_id and code.fallback.is_active else "",
        options=tuple((o.pk, o.label) for o in code.options.all()),
        shown=shown, version=str(code.updated_at.timestamp()),
    )


def members_of(*, code: LiveCode) -> list[routing.Member]:
    """The routing view of a code's members (for pages and alerts)."""
    snap = snapshot_build(slug=code.slug)
    return list(snap.spec.members) if snap else []


# --- operator reads ---------------------------------------------------------------------------------------------
def livecode_list(*, user: User) -> QuerySet[LiveCode]:
    return (LiveCode.objects.select_related("owner", "campaign")
            .annotate(n_targets=Count("targets", distinct=True),
                      n_alerts=Count("alerts", filter=Q(alerts__resolved_at__isnull=True), distinct=True))
            .order_by("-id"))


def livecode_get(*, user: User, code_id: int) -> LiveCode:
    code = LiveCode.objects.select_related("owner", "campaign", "fallback").filter(pk=code_id).first()
    if code is None:
        raise Http404("No such live code")
    return code


def targets_of(*, code: LiveCode) -> list[LiveCodeTarget]:
    return list(code.targets.select_related("staff", "chat", "option").order_by("option_id", "position", "id"))


def alerts_open(*, code: LiveCode | None = None) -> QuerySet[Alert]:
    qs = Alert.objects.filter(resolved_at__isnull=True).select_related("code", "target")
    return qs.filter(code=code) if code is not None else qs


@dataclass(frozen=True)
class DayRow:
    day: date
    scans: int
    visitors: int
    adds: int
    joins: int
    lost_1d: int
    lost_7d: int

    @property
    def conversion(self) -> float | None:
        done = self.adds + self.joins
        return round(done / self.scans, 4) if self.scans else None


def stats_by_day(*, code: LiveCode, days: int = 30, target_id: int | None = None) -> list[DayRow]:
    """Per day: scans and unique visitors (flushed from Redis), adds and joins (from callbacks), and how
    many of those people left again within 1 and 7 days."""
    until = timezone.localdate(now())  # days are the corp zone's, like TruncDate and the scan log
    since = until - timedelta(days=days - 1)
    scans = {s.day: s for s in DailyStat.objects.filter(code=code, target_id=target_id, day__gte=since)}
    conv = Conversion.objects.filter(code=code, occurred_at__date__gte=since)
    if target_id is not None:
        conv = conv.filter(target_id=target_id)
    agg: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in conv.annotate(day=TruncDate("occurred_at")).values("day", "kind", "occurred_at", "lost_at"):
        bucket = agg[row["day"]]
        bucket[row["kind"]] += 1
        if row["lost_at"] is not None:
            held = row["lost_at"] - row["occurred_at"]
            bucket["lost_1d"] += held <= timedelta(days=1)
            bucket["lost_7d"] += held <= timedelta(days=7)
    rows = []
    day = since
    while day <= until:
        s, c = scans.get(day), agg.get(day, {})
        rows.append(DayRow(day=day, scans=s.scans if s else 0, visitors=s.visitors if s else 0,
                           adds=c.get("add", 0), joins=c.get("join", 0), lost_1d=c.get("lost_1d", 0),
                           lost_7d=c.get("lost_7d", 0)))
        day += timedelta(days=1)
    return rows


def stats_by_target(*, code: LiveCode) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for s in DailyStat.objects.filter(code=code, target__isnull=False):
        out[s.target_id]["scans"] += s.scans
    for row in Conversion.objects.filter(code=code).values("target_id", "kind").annotate(n=Count("id")):
        out[row["target_id"]][row["kind"]] += row["n"]
    return out


@dataclass(frozen=True)
class Duplicate:
    contact_id: int
    contact_name: str
    groups: tuple[str, ...]


def duplicate_members(*, code: LiveCode) -> list[Duplicate]:
    """Contacts who joined more than one group of this code's pool."""
    rows = (Conversion.objects.filter(code=code, kind=Conversion.Kind.JOIN, target__isnull=False)
            .values("contact_id").annotate(n=Count("target_id", distinct=True)).filter(n__gt=1))
    ids = [r["contact_id"] for r in rows]
    if not ids:
        return []
    groups: dict[int, list[str]] = defaultdict(list)
    names: dict[int, str] = {}
    for conv in (Conversion.objects.filter(code=code, kind=Conversion.Kind.JOIN, contact_id__in=ids)
                 .select_related("contact", "target__chat").order_by("occurred_at")):
        label = str(conv.target) if conv.target else "?"
        if label not in groups[conv.contact_id]:
            groups[conv.contact_id].append(label)
        names[conv.contact_id] = str(conv.contact)
    return [Duplicate(contact_id=c, contact_name=names[c], groups=tuple(groups[c])) for c in ids]


def known_entities(*, external_userid: str) -> frozenset[str]:
    """What a customer identified on a landing page already belongs to, in the terms of ``routing.Member.entity``:
    the staff members who have them as an active customer and the customer groups they are in."""
    from contacts.models import FollowRelation, GroupMember

    staff = FollowRelation.objects.filter(contact__external_userid=external_userid, is_active=True) \
        .values_list("staff__userid", flat=True)
    chats = GroupMember.objects.filter(member_id=external_userid, left_at__isnull=True) \
        .values_list("chat__chat_id", flat=True)
    return frozenset([f"staff:{userid}" for userid in staff] + [f"chat:{chat_id}" for chat_id in chats])
