from datetime import UTC, datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()


def from_timestamp(ts: int | float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
