"""A contact's own time zone: an IANA name (``Asia/Tokyo``), blank meaning the corp's zone (``CORP_TIME_ZONE``).

One check for every way in (API, admin, CSV import): the name must be one zoneinfo knows. Case is forgiven
(``asia/tokyo`` is stored as ``Asia/Tokyo``); ``localtime`` (the server's own zone file) is not a zone.
"""

from functools import lru_cache
from zoneinfo import available_timezones

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

MAX_LENGTH = 64


@lru_cache(maxsize=1)
def _known() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones() if name != "localtime"}


def known_time_zones() -> frozenset[str]:
    """Every name a contact's zone may have (the canonical IANA names zoneinfo knows)."""
    return frozenset(_known().values())


def time_zone_clean(value: str | None) -> str:
    """The canonical IANA name for ``value`` ('' for blank); ``ValidationError`` for anything else."""
    name = (value or "").strip()
    if not name:
        return ""
    canonical = _known().get(name.lower()) if len(name) <= MAX_LENGTH else None
    if canonical is None:
        raise _invalid(name)
    return canonical


def validate_time_zone(value: str) -> None:
    """Model field validator: blank or exactly a known name (the admin stores what it validates)."""
    if value and _known().get(value.lower()) != value:
        raise _invalid(value)


def _invalid(name: str) -> ValidationError:
    return ValidationError(_("%(value)s is not a known time zone; use an IANA name such as Asia/Tokyo."),
                           code="invalid_time_zone", params={"value": name[:MAX_LENGTH]})
