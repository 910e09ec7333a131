"""The routing engine of live codes: pure functions over frozen dataclasses. No ORM, no clock, no I/O.

``plan`` turns a code's snapshot, what we know about the visitor and the time into an ordered list of
candidates. The atomic part, "take the first candidate whose counter is under its limit and count it", runs
in Redis (``livecodes.hotpath``); ``claim`` is the same rule in Python: the reference the Lua script is tested
against, and what the table-driven tests exercise.
"""

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# Which counter a member's limit applies to.
SCANS = "s"  # scans routed to it (uploaded group QR images: WeCom tells us nothing)
JOINS = "j"  # real joins from callbacks (WeCom groups behind a join way)
ADDS_TODAY = "d"  # real adds today (staff daily cap)

FILL, ROUND_ROBIN, WEIGHTED, LOCATION = "fill", "round_robin", "weighted", "location"
STAFF, WECOM_GROUP, IMAGE = "staff", "wecom_group", "image"


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    """Working hours: ISO weekday (1–7) → minute ranges; special dates override their weekday.

    ``weekly=None`` means always on duty (no schedule set).
    """

    weekly: Mapping[int, tuple[tuple[int, int], ...]] | None = None
    dates: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    def on_duty(self, at: datetime) -> bool:
        day = at.date().isoformat()
        if day in self.dates:
            ranges = self.dates[day]
        elif self.weekly is None:
            return True
        else:
            ranges = self.weekly.get(at.isoweekday(), ())
        minute = at.hour * 60 + at.minute
        return any(start <= minute < end for start, end in ranges)

    @property
    def ever_on_duty(self) -> bool:
        if self.weekly is None:
            return True
        return any(end > start for ranges in self.weekly.values() for start, end in ranges)


def _minutes(text: str) -> int:
    try:
        hours, minutes = str(text).split(":")
        value = int(hours) * 60 + int(minutes)
    except ValueError as exc:
        raise ScheduleError(f"bad time {text!r}, expected HH:MM") from exc
    if not 0 <= value <= 24 * 60:
        raise ScheduleError(f"bad time {text!r}")
    return value


def _ranges(raw) -> tuple[tuple[int, int], ...]:
    out = []
    for pair in raw or ():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ScheduleError("a working period is [start, end]")
        start, end = _minutes(pair[0]), _minutes(pair[1])
        if end <= start:
            raise ScheduleError(f"period {pair[0]}–{pair[1]} ends before it starts")
        out.append((start, end))
    return tuple(out)


def schedule_parse(raw: Mapping | None) -> Schedule:
    """``{"weekly": {"1": [["09:00", "18:00"]], …}, "dates": {"2026-10-01": []}}``; ``{}`` = always."""
    if not raw:
        return Schedule()
    if not isinstance(raw, Mapping):
        raise ScheduleError("a schedule is an object")
    weekly = None
    if "weekly" in raw and raw["weekly"] is not None:
        weekly = {}
        for day, ranges in dict(raw["weekly"]).items():
            if str(day) not in {"1", "2", "3", "4", "5", "6", "7"}:
                raise ScheduleError(f"bad weekday {day!r} (1 = Monday … 7 = Sunday)")
            weekly[int(day)] = _ranges(ranges)
    dates = {}
    for day, ranges in dict(raw.get("dates") or {}).items():
        try:
            datetime.strptime(day, "%Y-%m-%d")  # noqa: DTZ007 - a calendar date, no time zone involved
        except ValueError as exc:
            raise ScheduleError(f"bad date {day!r}") from exc
        dates[day] = _ranges(ranges)
    return Schedule(weekly=weekly, dates=dates)


@dataclass(frozen=True)
class Member:
    """One pool member as routing sees it (built from the database snapshot)."""

    id: int
    kind: str
    entity: str  # what dedup compares across codes: "staff:<userid>", "chat:<chat_id>", "img:<sha>"
    position: int = 0
    enabled: bool = True
    weight: int = 1
    limit: int | None = None
    counter: str = SCANS
    expires_at: float | None = None  # unix seconds
    backup: bool = False
    schedule: Schedule = field(default_factory=Schedule)
    regions: tuple[str, ...] = ()
    lat: float | None = None
    lng: float | None = None
    option_id: int | None = None


@dataclass(frozen=True)
class CodeSpec:
    id: int
    kind: str
    mode: str = FILL
    active: bool = True
    members: tuple[Member, ...] = ()


@dataclass(frozen=True)
class Visitor:
    sticky: frozenset[str] = frozenset()  # entities this visitor was routed to before (signed cookie)
    known: frozenset[str] = frozenset()  # entities a known contact already belongs to (groups, staff)
    region: str = ""
    lat: float | None = None
    lng: float | None = None


@dataclass(frozen=True)
class Candidate:
    member_id: int
    limit: int | None  # None: no limit
    counter: str
    bump: bool = True  # count this scan against the member's routed-scans counter


@dataclass(frozen=True)
class Plan:
    candidates: tuple[Candidate, ...]
    rotate: int = 0  # rotate the first N candidates by a shared round-robin counter
    reason: str = "rotation"


def available(member: Member, *, at: datetime) -> bool:
    if not member.enabled:
        return False
    if member.expires_at is not None and member.expires_at <= at.timestamp():
        return False
    if member.kind == STAFF and not member.schedule.on_duty(at):
        return False
    return True


def _distance(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def _by_location(members: list[Member], visitor: Visitor) -> list[Member]:
    if visitor.lat is not None and visitor.lng is not None:
        placed = [m for m in members if m.lat is not None and m.lng is not None]
        if placed:
            placed.sort(key=lambda m: (_distance(visitor.lat, visitor.lng, m.lat, m.lng), m.position, m.id))
            return placed + [m for m in members if m not in placed]
    if visitor.region:
        names = region_names(visitor.region)
        scored = [(score, m) for m in members if (score := _region_score(m.regions, names)) >= 0]
        if scored:
            # The most specific match first (a city rule before its province's), then pool order (stable sort).
            matching = [m for _score, m in sorted(scored, key=lambda pair: -pair[0])]
            return matching + [m for m in members if m not in matching]
    return members


# Administrative suffixes operators and lookups write or leave out ("广东省" = "广东", "深圳市" = "深圳"). Longest
# first, one stripped per name, and a name is never cut below two characters.
_REGION_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "地区", "省", "市")
_REGION_SPLIT = re.compile(r"[\s,，、/|;；]+")


def region_name(name: str) -> str:
    name = name.strip()
    for suffix in _REGION_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def region_names(text: str) -> tuple[str, ...]:
    """The names in a region string, least specific first ("广东省 深圳市" → ("广东", "深圳"))."""
    return tuple(n for n in (region_name(part) for part in _REGION_SPLIT.split(text)) if n)


def _region_score(rules: tuple[str, ...], names: tuple[str, ...]) -> int:
    """-1 when no rule matches the visitor's names, else the index of the most specific name matched. A rule
    matches a name when one contains the other ("深圳" matches "广东深圳" from a proxy header)."""
    best = -1
    for rule in rules:
        rule = region_name(rule)
        if not rule:
            continue
        for index, name in enumerate(names):
            if index > best and (rule in name or name in rule):
                best = index
    return best


def _weighted(members: list[Member], rng: random.Random) -> list[Member]:
    # Efraimidis–Spirakis: a weighted random permutation, so capped members fall through to the next.
    keyed = [(rng.random() ** (1.0 / max(m.weight, 1)), m) for m in members if m.weight > 0]
    return [m for _, m in sorted(keyed, key=lambda pair: -pair[0])]


def _candidate(member: Member, *, bump: bool = True) -> Candidate:
    return Candidate(member_id=member.id, limit=member.limit, counter=member.counter, bump=bump)


def plan(code: CodeSpec, visitor: Visitor, *, at: datetime, option_id: int | None = None,
         rng: random.Random | None = None) -> Plan:
    """Order the candidates for one scan. ``at`` is the corp's local time (schedules are local)."""
    if not code.active:
        return Plan(candidates=(), reason="disabled")
    pool = [m for m in code.members if option_id is None or m.option_id == option_id]
    live = sorted((m for m in pool if available(m, at=at)), key=lambda m: (m.position, m.id))

    # 1. A known contact already in one of the pool's groups (or a customer of one of its staff) goes there.
    for member in live:
        if member.entity in visitor.known:
            return Plan(candidates=(Candidate(member.id, None, member.counter, bump=False),), reason="known")
    # 2. Someone who scanned before gets the same target, as long as it still takes people.
    sticky = [
        Candidate(m.id, None if m.counter == SCANS else m.limit, m.counter, bump=False)
        for m in live if m.entity in visitor.sticky
    ]
    primary = [m for m in live if not m.backup]
    backup = [m for m in live if m.backup]
    rotate = 0
    if code.mode == ROUND_ROBIN:
        rotate = len(primary)
    elif code.mode == WEIGHTED:
        primary = _weighted(primary, rng or random.Random())  # noqa: S311 - load spreading, not security
    elif code.mode == LOCATION:
        primary = _by_location(primary, visitor)
    ordered = [_candidate(m) for m in primary] + [_candidate(m) for m in backup]
    if sticky:
        return Plan(candidates=tuple(sticky + ordered), rotate=0, reason="sticky")
    return Plan(candidates=tuple(ordered), rotate=rotate, reason="rotation")


def claim(plan_: Plan, counts: Mapping[tuple[str, int], int], *, rr: int = 0) -> Candidate | None:
    """The first candidate under its limit (the Lua script in ``hotpath`` does the same atomically).

    ``rr`` is the round-robin counter value after this scan's increment (1 for the first scan).
    """
    candidates = list(plan_.candidates)
    n = plan_.rotate
    if n:
        offset = (rr - 1) % n
        candidates = candidates[offset:n] + candidates[:offset] + candidates[n:]
    for cand in candidates:
        if cand.limit is None or counts.get((cand.counter, cand.member_id), 0) < cand.limit:
            return cand
    return None


def nobody_on_duty(schedules: list[Schedule]) -> bool:
    """True when a staff code's schedules leave nobody on duty at any time of the week."""
    return not any(s.ever_on_duty for s in schedules)


def capacity_left(members: list[Member], counts: Mapping[tuple[str, int], int], *, at: datetime) -> int | None:
    """People the pool can still take (None: unlimited)."""
    total = 0
    for m in members:
        if not available(m, at=at):
            continue
        if m.limit is None:
            return None
        total += max(0, m.limit - counts.get((m.counter, m.id), 0))
    return total


def forecast_full_at(*, capacity: int, rate_per_hour: float, now_ts: float) -> float | None:
    """When the pool fills at the current rate (unix seconds), or None when it is not filling."""
    if rate_per_hour <= 0:
        return None
    return now_ts + capacity / rate_per_hour * 3600.0
