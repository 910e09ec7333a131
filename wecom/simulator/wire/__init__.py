"""The WeCom wire protocol (``/cgi-bin/...``): endpoint registry."""

from __future__ import annotations

from . import auth, contact_ways, contacts, groups, mass, media, messages, tags
from .base import Endpoint

ENDPOINTS: dict[str, Endpoint] = {
    endpoint.name: endpoint
    for module in (auth, contacts, tags, contact_ways, groups, mass, messages, media)
    for endpoint in module.ENDPOINTS
}

__all__ = ["ENDPOINTS", "Endpoint"]
