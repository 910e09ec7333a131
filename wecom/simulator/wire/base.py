"""Shared pieces of the WeCom wire API: handler context, endpoint declaration and common validators.

Handlers receive a ``WireContext`` that deliberately has no way to emit callbacks: operations done through
the API never trigger callbacks in WeCom (API.md §2.5), and the type system keeps it that way here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..config import Settings, SimulatorConfig
from ..errors import ApiError, invalid_param
from ..multipart import UploadedFile
from ..params import Params
from ..state import Customer, Media, Member, World
from ..tokens import TokenStore

Payload = dict[str, Any]


@dataclass
class WireContext:
    world: World
    tokens: TokenStore
    clock: Clock
    settings: Settings
    config: SimulatorConfig
    public_url: str
    media_blobs: dict[str, bytes]
    files: dict[str, UploadedFile]

    @property
    def now(self) -> int:
        return self.clock.now_int()


Handler = Callable[[WireContext, Params], Payload]


@dataclass(frozen=True)
class Endpoint:
    """``source``: where parameters come from — "query", "json" body, or "multipart" (query + files)."""

    name: str
    method: str
    handler: Handler
    mutates: bool = False
    authenticated: bool = True
    rate_limited: bool = True
    source: str = "json"


def get(name: str, handler: Handler, *, authenticated: bool = True, mutates: bool = False) -> Endpoint:
    return Endpoint(name, "GET", handler, mutates=mutates, authenticated=authenticated, source="query")


def post(name: str, handler: Handler, *, mutates: bool = False, rate_limited: bool = True) -> Endpoint:
    return Endpoint(name, "POST", handler, mutates=mutates, rate_limited=rate_limited)


# --- lookups with WeCom errcodes ---------------------------------------------------------------------------


def require_member(world: World, userid: str, *, missing: int = 41009) -> Member:
    if not userid:
        raise ApiError(missing)
    member = world.members.get(userid)
    if member is None:
        raise ApiError(60111, f"userid not found: {userid}")
    return member


def require_contact_member(world: World, userid: str) -> Member:
    """A member who may have customers (activated, customer-contact permission)."""
    member = require_member(world, userid)
    if member.status != 1:
        raise ApiError(41054, f"member {userid} is not activated")
    if not member.customer_contact:
        raise ApiError(84074, f"member {userid} has no customer-contact permission")
    return member


def require_customer(world: World, external_userid: str, *, read_only: bool = False) -> Customer:
    """The customer; with ``read_only`` a compact row is not turned into a kept object (never change it)."""
    if not external_userid:
        raise ApiError(41035)
    customer = world.customers.peek(external_userid) if read_only else world.customers.get(external_userid)
    if customer is None:
        raise ApiError(40096, f"invalid external userid: {external_userid}")
    return customer


# --- validators --------------------------------------------------------------------------------------------


def check_utf8_bytes(name: str, value: str, limit: int, errcode: int = 40058) -> None:
    if len(value.encode("utf-8")) > limit:
        raise ApiError(errcode, f"{name} exceeds {limit} bytes")


def parse_text(p: Params, *, limit: int) -> dict[str, Any]:
    """A ``text: {content}`` block; empty dict when absent."""
    content = p.child("text").text("content")
    if not content:
        return {}
    check_utf8_bytes("text.content", content, limit)
    return {"content": content}


_ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")
_LINK_LIMITS = (("title", 128), ("desc", 512), ("url", 2048))


def parse_attachments(ctx: WireContext, p: Params) -> list[dict[str, Any]]:
    """Validate the ``attachments`` array shared by mass messages and welcome messages (API.md §6.1)."""
    attachments = p.obj_list("attachments")
    if len(attachments) > 9:
        raise ApiError(41064, "too many attachments (at most 9)")
    for attachment in attachments:
        msgtype = attachment.get("msgtype")
        if msgtype not in _ATTACHMENT_TYPES:
            raise ApiError(41065, f"invalid attachment msgtype: {msgtype!r}")
        body = Params(attachment, invalid_param).child(msgtype)
        _check_attachment(ctx, msgtype, body)
    return attachments


def _check_attachment(ctx: WireContext, msgtype: str, body: Params) -> None:
    if msgtype == "image":
        if not body.has("media_id") and not body.has("pic_url"):
            raise invalid_param("image attachment needs media_id or pic_url")
        if body.has("media_id"):
            require_media(ctx, body.text("media_id"), kind="image")
    elif msgtype == "link":
        for name, limit in _LINK_LIMITS:
            check_utf8_bytes(f"link.{name}", body.text(name), limit)
        if not body.has("title") or not body.has("url"):
            raise invalid_param("link attachment needs title and url")
    elif msgtype == "miniprogram":
        check_utf8_bytes("miniprogram.title", body.text("title"), 64)
        for name in ("title", "pic_media_id", "appid", "page"):
            if not body.has(name):
                raise invalid_param(f"miniprogram attachment needs {name}")
        require_media(ctx, body.text("pic_media_id"), kind="image")  # the card's cover
    else:
        require_media(ctx, body.required_text("media_id"), kind=msgtype)


def require_media(ctx: WireContext, media_id: str, *, kind: str) -> Media:
    """A temporary media id from ``media/upload?type=<kind>``, uploaded at most ``media_ttl`` (3 days) ago; 40007
    otherwise: unknown, expired, of another type (a voice or file upload is no image), or the id behind a permanent
    ``media/uploadimg`` URL (that URL goes in ``pic_url``; it is not a media id)."""
    media = ctx.world.media.get(media_id)
    if media is None or media.permanent:
        raise ApiError(40007, f"invalid media_id: {media_id}")
    if media.created_at + ctx.settings.media_ttl < ctx.now:
        raise ApiError(40007, f"invalid media_id: {media_id} expired (temporary media is valid 3 days)")
    if media.type != kind:
        raise ApiError(40007, f"invalid media_id: {media_id} is a {media.type} upload, {kind} expected")
    return media


# --- cursor paging -----------------------------------------------------------------------------------------


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sim:{offset}".encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        prefix, offset = text.split(":", 1)
        value = int(offset)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_param("invalid cursor") from None
    if prefix != "sim" or value < 0:
        raise invalid_param("invalid cursor")
    return value


def paginate[T](items: Sequence[T], cursor: str, limit: int) -> tuple[list[T], str]:
    """One page and the cursor of the next one ("" when this is the last page)."""
    start = decode_cursor(cursor)
    page = list(items[start : start + limit])
    end = start + len(page)
    return page, encode_cursor(end) if end < len(items) else ""
