"""The mass-message receive limit (API.md §6.1): each customer or group receives at most N mass messages
per period. Default: per calendar month, N = number of days in that month; the admin may switch to 7 per
week or 1 per day. Periods follow China Standard Time, like WeCom."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

from .config import Settings
from .state import World

CHINA_TZ = timezone(timedelta(hours=8), "CST")
# Receipts older than any period (a month plus slack) are pruned.
_RETENTION_SECONDS = 40 * 86400
_DEFAULT_LIMITS = {"week": 7, "day": 1}


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC).astimezone(CHINA_TZ)


def period_key(ts: float, period: str) -> str:
    moment = _local(ts)
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


def period_limit(ts: float, settings: Settings) -> int:
    if settings.mass_msg_quota_limit is not None:
        return settings.mass_msg_quota_limit
    period = settings.mass_msg_quota_period
    if period in _DEFAULT_LIMITS:
        return _DEFAULT_LIMITS[period]
    moment = _local(ts)
    return calendar.monthrange(moment.year, moment.month)[1]


def received_in_period(world: World, target: str, ts: float, period: str) -> int:
    key = period_key(ts, period)
    return sum(1 for received in world.mass_receipts.get(target, []) if period_key(received, period) == key)


def try_receive(world: World, settings: Settings, target: str, ts: int) -> bool:
    """Count one mass message for ``target`` unless that would exceed its quota; False = over quota."""
    period = settings.mass_msg_quota_period
    receipts = [r for r in world.mass_receipts.get(target, []) if r > ts - _RETENTION_SECONDS]
    world.mass_receipts[target] = receipts
    if received_in_period(world, target, ts, period) >= period_limit(ts, settings):
        return False
    receipts.append(ts)
    return True
