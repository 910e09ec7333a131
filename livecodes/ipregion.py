"""A scanner's province and city from their IP address, for "by location" rotation.

The data is the GeoLite2 City database bundled by the ``maxminddb-geolite2`` package (built 2018-07-03; GeoLite2
data created by MaxMind, CC BY-SA 4.0, https://www.maxmind.com), read with ``maxminddb``: nothing is fetched at
run time. The file is memory-mapped once per process on first use and each answer is kept in a small LRU, so a
lookup costs a dict hit for a returning address and a few microseconds otherwise. It runs only for codes that
rotate by location when neither the proxy's region header nor browser coordinates said where the scanner is.

Chinese names come from the database's ``zh-CN`` names, with the administrative suffix dropped
("广东", "深圳"), so they compare with what operators type in a pool member's region.
"""

import ipaddress
import logging
import threading
from functools import lru_cache

from django.conf import settings

from livecodes.routing import region_name

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_reader = None
_unavailable = False


def _open():
    """The process's reader (None when the database cannot be opened: then no region comes from IPs)."""
    global _reader, _unavailable
    if _reader is not None or _unavailable:
        return _reader
    with _lock:
        if _reader is None and not _unavailable:
            try:
                import maxminddb
                from _maxminddb_geolite2 import geolite2_database

                _reader = maxminddb.open_database(settings.LIVECODE_IP_REGION_DB or geolite2_database(),
                                                  maxminddb.MODE_AUTO)
            except (ImportError, OSError, ValueError) as exc:
                _unavailable = True
                logger.warning("livecodes: IP region database unavailable, regions come only from headers and "
                               "coordinates: %s", exc)
    return _reader


def _names(record: dict) -> str:
    country = record.get("country") or {}
    parts = []
    if country.get("iso_code") != "CN":  # Hong Kong, Macao, Taiwan and abroad: the country's own name first
        parts.append((country.get("names") or {}).get("zh-CN", ""))
    parts.extend((subdivision.get("names") or {}).get("zh-CN", "") for subdivision in record.get("subdivisions") or ())
    parts.append(((record.get("city") or {}).get("names") or {}).get("zh-CN", ""))
    out: list[str] = []
    for part in parts:
        name = region_name(part or "")
        if name and name not in out:
            out.append(name)
    return " ".join(out)


@lru_cache(maxsize=4096)
def _lookup(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if not address.is_global:  # loopback, private, link-local, reserved: nowhere on the map
        return ""
    reader = _open()
    if reader is None:
        return ""
    try:
        record = reader.get(address)
    except (ValueError, OSError) as exc:
        logger.info("livecodes: IP region lookup failed: %s", exc)
        return ""
    return _names(record) if isinstance(record, dict) else ""


def region_of(ip: str) -> str:
    """"广东 深圳" (least specific first), or "" when the address is unknown, private or not an address."""
    if not ip or not settings.LIVECODE_IP_REGION:
        return ""
    return _lookup(ip.strip()[:45])


def client_ip(meta) -> str:
    """The scanner's address: ``REMOTE_ADDR``, or the first X-Forwarded-For address when the proxy in front is
    trusted to set that header (``LIVECODE_TRUST_X_FORWARDED_FOR``)."""
    if settings.LIVECODE_TRUST_X_FORWARDED_FOR:
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",", 1)[0].strip()
    return meta.get("REMOTE_ADDR", "")


def reset() -> None:
    """Forget cached answers and the open reader (tests that switch the database)."""
    global _reader, _unavailable
    with _lock:
        _reader, _unavailable = None, False
    _lookup.cache_clear()
