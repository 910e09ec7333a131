"""The journey engine: decide what one enrollment does next (pure: no ORM, no clock, no I/O).

The sweeper gathers a ``Situation`` for each due enrollment (time injected, facts pre-loaded set-based)
and applies the returned action. Time zones come from zoneinfo; quiet hours and preferred send windows
are local times that may cross midnight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MARKETING = "marketing"
HOLD_RETRY_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Step:
    position: int
    kind: str  # wait | send | tag | branch | goal | exit
    config: dict = field(default_factory=dict)
    channel: str = "single"


@dataclass(frozen=True)
class Policy:
    tz: str = "Asia/Shanghai"
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)
    cap_max: int = 2  # marketing touches per rolling window (0 = no cap)
    cap_days: int = 7
    receive_quota: int = 0  # per calendar month; 0 = as many as the month has days (WeCom's default)
    max_holds: int = 3  # a held step retries this many times, then moves on


@dataclass(frozen=True)
class Situation:
    now: datetime
    entered_at: datetime
    priority: str = MARKETING
    is_customer: bool = True
    opted_out: bool = False
    converted: bool = False
    paused: bool = False
    holdout: bool = False
    recent_marketing: int = 0  # marketing touches in the cap window, across journeys and broadcasts
    month_count: int = 0  # mass messages this calendar month
    quota_blocked_until: datetime | None = None
    hold_count: int = 0
    condition: bool | None = None  # branch condition / goal event, evaluated by the caller
    contact_tz: str = ""  # the contact's IANA zone; blank (or unknown): the policy's (corp) zone


# --- actions -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wait:
    until: datetime


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Hold:
    """Not now: run this same step again at ``until`` (``counts``: a cap hold that uses up a retry)."""

    until: datetime
    reason: str
    counts: bool = False


@dataclass(frozen=True)
class Skip:
    """The step is not done for this contact (visible in the timeline); go on with the next one."""

    reason: str


@dataclass(frozen=True)
class Tag:
    add: tuple[int, ...]
    remove: tuple[int, ...]


@dataclass(frozen=True)
class Jump:
    to: int


@dataclass(frozen=True)
class Next:
    pass


@dataclass(frozen=True)
class Exit:
    reason: str


@dataclass(frozen=True)
class Convert:
    pass


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Done:
    pass


Action = Wait | Send | Hold | Skip | Tag | Jump | Next | Exit | Convert | Pause | Done


def next_action(step: Step | None, s: Situation, policy: Policy) -> Action:
    """What to do with the enrollment at ``step`` (None: past the last step)."""
    if s.paused:
        return Pause()
    if not s.is_customer:
        return Exit("not_customer")
    if s.converted:
        return Convert()
    if step is None:
        return Done()
    if step.kind == "wait":
        return Wait(wait_until(step.config, now=s.now, entered_at=s.entered_at, tz=_zone(s, policy)))
    if step.kind == "tag":
        return Tag(tuple(step.config.get("add", ())), tuple(step.config.get("remove", ())))
    if step.kind == "branch":
        return Next() if s.condition else Jump(int(step.config.get("else", 0)) or 10_000)
    if step.kind == "goal":
        return Convert() if s.condition else Next()
    if step.kind == "exit":
        return Exit("exit_step")
    if step.kind == "send":
        return _send(step, s, policy)
    raise ValueError(f"unknown step kind {step.kind!r}")


def _send(step: Step, s: Situation, policy: Policy) -> Action:
    if s.holdout:
        return Skip("holdout")
    marketing = s.priority == MARKETING
    if marketing and s.opted_out:
        return Skip("opted_out")
    zone = _zone(s, policy)  # quiet hours and send windows are the customer's local times
    window = _window(step.config.get("window"))
    if step.channel != "staff_reminder":
        allowed = next_allowed(s.now, zone=zone, quiet=(policy.quiet_start, policy.quiet_end), window=window)
        if allowed > s.now:
            return Hold(allowed, "quiet_hours" if _in_quiet(s.now, zone, policy) else "send_window")
    if step.channel == "single":
        # WeCom counts its receive quota per calendar month of the corp (month_count is counted the same way),
        # whatever the customer's own zone.
        corp_zone = ZoneInfo(policy.tz)
        if s.quota_blocked_until and s.quota_blocked_until > s.now:
            return _held_or_skip(step, s, "receive_quota", until=s.quota_blocked_until, policy=policy)
        if s.month_count >= month_quota(s.now, policy, corp_zone):
            return _held_or_skip(step, s, "receive_quota", until=_next_month(s.now, corp_zone), policy=policy)
    if marketing and step.channel != "staff_reminder" and policy.cap_max and s.recent_marketing >= policy.cap_max:
        return _held_or_skip(step, s, "frequency_cap", until=s.now + HOLD_RETRY_AFTER, policy=policy)
    return Send()


def _held_or_skip(step: Step, s: Situation, reason: str, *, until: datetime, policy: Policy) -> Action:
    if step.config.get("on_hold", "retry") == "skip" or s.hold_count >= policy.max_holds:
        return Skip(reason)
    return Hold(until, reason, counts=True)


# --- time ------------------------------------------------------------------------------------------------------------
def _zone(s: Situation, policy: Policy) -> ZoneInfo:
    return zone_for(s.contact_tz, policy)


def zone_for(contact_tz: str, policy: Policy) -> ZoneInfo:
    """The zone of a contact's local times: their own when known, else the policy's (an unknown name, e.g. a
    zone dropped from a newer tz database, falls back rather than failing the batch)."""
    if contact_tz:
        try:
            return ZoneInfo(contact_tz)
        except (KeyError, ValueError, OSError):
            pass
    return ZoneInfo(policy.tz)


def parse_hhmm(value: str) -> time:
    hours, _, minutes = str(value).partition(":")
    result = time(int(hours), int(minutes or 0))
    return result


def _window(value) -> tuple[time, time] | None:
    if not value:
        return None
    return parse_hhmm(value[0]), parse_hhmm(value[1])


def _within(t: time, start: time, end: time) -> bool:
    """Is ``t`` in [start, end) — an interval that may cross midnight."""
    if start == end:
        return True
    return start <= t < end if start < end else (t >= start or t < end)


def _in_quiet(at: datetime, zone: ZoneInfo, policy: Policy) -> bool:
    return _within(at.astimezone(zone).time(), policy.quiet_start, policy.quiet_end)


def is_allowed(at: datetime, *, zone: ZoneInfo, quiet: tuple[time, time], window: tuple[time, time] | None) -> bool:
    local = at.astimezone(zone).time()
    if quiet[0] != quiet[1] and _within(local, *quiet):
        return False
    return window is None or _within(local, *window)


def next_allowed(now: datetime, *, zone: ZoneInfo, quiet: tuple[time, time],
                 window: tuple[time, time] | None) -> datetime:
    """The first moment ≥ now outside quiet hours and inside the window (both local, may cross midnight)."""
    if is_allowed(now, zone=zone, quiet=quiet, window=window):
        return now
    today = now.astimezone(zone).date()
    starts = [quiet[1]] + ([window[0]] if window else [])
    candidates = sorted(
        _local(today + timedelta(days=d), t, zone) for d in range(0, 3) for t in starts
    )
    for candidate in candidates:
        if candidate >= now and is_allowed(candidate, zone=zone, quiet=quiet, window=window):
            return candidate
    # A window entirely inside quiet hours never opens: fall back to the end of quiet hours.
    return next(c for c in candidates if c >= now)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


def wait_until(config: dict, *, now: datetime, entered_at: datetime, tz: ZoneInfo | str) -> datetime:
    """When a wait step ends: a duration, day N after entry at a local time, the next local time, or the
    next weekday (0 = Monday) at a local time. A moment already past means "now" (never in the past)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    at = parse_hhmm(config["at"]) if config.get("at") else None
    duration = timedelta(days=config.get("days", 0), hours=config.get("hours", 0), minutes=config.get("minutes", 0))
    if "day" in config:
        day = entered_at.astimezone(zone).date() + timedelta(days=int(config["day"]))
        target = _local(day, at, zone) if at else entered_at + timedelta(days=int(config["day"]))
        return max(target, now)
    if "weekday" in config:
        local_today = now.astimezone(zone).date()
        ahead = (int(config["weekday"]) - local_today.weekday()) % 7
        target = _local(local_today + timedelta(days=ahead), at or time(9, 0), zone)
        return target if target > now else target + timedelta(days=7)
    if at is not None:
        target = _local(now.astimezone(zone).date(), at, zone)
        return target if target > now else _local(now.astimezone(zone).date() + timedelta(days=1), at, zone)
    return now + duration


def month_quota(now: datetime, policy: Policy, zone: ZoneInfo) -> int:
    if policy.receive_quota:
        return policy.receive_quota
    local = now.astimezone(zone)
    return (_next_month(now, zone).astimezone(zone).date() - local.date().replace(day=1)).days


def _next_month(now: datetime, zone: ZoneInfo) -> datetime:
    local = now.astimezone(zone).date()
    first = date(local.year + (local.month == 12), local.month % 12 + 1, 1)
    return _local(first, time(0, 0), zone)


def month_start(now: datetime, tz: str) -> datetime:
    zone = ZoneInfo(tz)
    return _local(now.astimezone(zone).date().replace(day=1), time(0, 0), zone)


def in_holdout(contact_id: int, journey_family: int, percent: int) -> bool:
    """Deterministic control group by contact (and journey family, so versions keep the same split)."""
    if percent <= 0:
        return False
    import hashlib

    digest = hashlib.blake2b(f"{journey_family}:{contact_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 100 < percent


def validate_steps(steps: list[Step], *, template_ok: dict[int, str | None]) -> list[str]:
    """Problems that keep a journey from going live (empty list: fine). ``template_ok`` maps a send step's
    position to an error message of its template (None when it renders)."""
    problems: list[str] = []
    if not steps:
        return ["the journey has no steps"]
    positions = [s.position for s in steps]
    if len(set(positions)) != len(positions):
        problems.append("two steps share a position")
    by_pos = {s.position: s for s in steps}
    order = sorted(positions)
    reachable: set[int] = set()
    todo = [order[0]]
    while todo:
        pos = todo.pop()
        if pos in reachable or pos not in by_pos:
            continue
        reachable.add(pos)
        step = by_pos[pos]
        following = [p for p in order if p > pos]
        if step.kind == "exit":
            continue
        if following:
            todo.append(following[0])
        if step.kind == "branch":
            target = step.config.get("else")
            if target is None:
                problems.append(f"step {pos}: a branch needs an 'else' step")
            elif int(target) not in by_pos:
                problems.append(f"step {pos}: branch target {target} does not exist")
            elif int(target) <= pos:
                problems.append(f"step {pos}: a branch may only jump forward")
            else:
                todo.append(int(target))
            if "condition" not in step.config:
                problems.append(f"step {pos}: a branch needs a condition")
    problems.extend(f"step {pos} can never be reached" for pos in order if pos not in reachable)
    for step in steps:
        if step.kind == "send" and template_ok.get(step.position):
            problems.append(f"step {step.position}: {template_ok[step.position]}")
        if step.kind == "send" and step.config.get("window"):
            try:
                _window(step.config["window"])
            except (ValueError, IndexError, TypeError):
                problems.append(f"step {step.position}: the send window is two times like [\"19:00\", \"22:00\"]")
        if step.kind == "wait":
            try:
                wait_until(step.config, now=datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")),
                           entered_at=datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")), tz="UTC")
            except (ValueError, KeyError, TypeError):
                problems.append(f"step {step.position}: wait settings are not understood")
            if not step.config:
                problems.append(f"step {step.position}: a wait needs a duration or a time")
    return problems
