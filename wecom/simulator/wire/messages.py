"""Welcome messages (API.md §6.3) and application messages to staff (§6.4)."""

from __future__ import annotations

import json
from typing import Any

from .. import ids
from ..errors import ApiError, invalid_param
from ..params import Params
from ..state import AppMessage, WelcomeMessage, World, trim_history
from .base import Endpoint, Payload, WireContext, check_utf8_bytes, parse_attachments, parse_text, post

APP_MSG_TYPES = (
    "text",
    "image",
    "voice",
    "video",
    "file",
    "textcard",
    "news",
    "mpnews",
    "markdown",
    "miniprogram_notice",
    "template_card",
)
APP_TEXT_LIMIT = 2048
MAX_TOUSER = 1000
MAX_TOPARTY_TOTAG = 100
ROOT_PARTY = "1"
DUPLICATE_INTERVAL_DEFAULT, DUPLICATE_INTERVAL_MAX = 1800, 4 * 3600


# --- send_welcome_msg --------------------------------------------------------------------------------------


def send_welcome_msg(ctx: WireContext, p: Params) -> Payload:
    code = p.text("welcome_code")
    if not code:
        raise ApiError(41049)
    record = ctx.world.welcome_codes.get(code)
    if record is None:
        raise ApiError(41050, "invalid welcome_code")
    if record.used_at is not None:
        raise ApiError(41051, "welcome_code already used")
    now = ctx.clock.now()
    if now - record.issued_at > ctx.settings.welcome_code_ttl:
        raise ApiError(41050, f"welcome_code expired (valid for {ctx.settings.welcome_code_ttl} s)")
    text = parse_text(p, limit=4000)
    attachments = parse_attachments(ctx, p)
    if not text and not attachments:
        raise invalid_param("text and attachments cannot both be empty")
    record.used_at = now
    ctx.world.welcome_messages.append(
        WelcomeMessage(
            welcome_code=code,
            userid=record.userid,
            external_userid=record.external_userid,
            sent_at=int(now),
            text=text,
            attachments=attachments,
        )
    )
    trim_history(ctx.world.welcome_messages)
    return {}


# --- message/send ------------------------------------------------------------------------------------------


def message_send(ctx: WireContext, p: Params) -> Payload:
    agentid = p.integer("agentid")
    if agentid is None:
        raise ApiError(41011)
    if agentid != ctx.config.agent_id:
        raise ApiError(40056, f"invalid agentid: {agentid}")
    msgtype = p.text("msgtype")
    if msgtype not in APP_MSG_TYPES:
        raise ApiError(40008, f"invalid message type: {msgtype!r}")
    body = _message_body(p, msgtype)
    users, invalid_users = _resolve_users(ctx.world, p.text("touser"))
    party_users, invalid_parties = _resolve_parties(ctx.world, p.text("toparty"))
    invalid_tags = _split(p.text("totag"), "totag", MAX_TOPARTY_TOTAG)  # member tags are not modelled
    recipients = list(dict.fromkeys([*users, *party_users]))
    if not recipients:
        raise ApiError(81013)
    message = AppMessage(
        msgid=ids.app_msgid(),
        agentid=agentid,
        msgtype=msgtype,
        sent_at=ctx.now,
        body=body,
        invaliduser=invalid_users,
        invalidparty=invalid_parties,
        invalidtag=invalid_tags,
    )
    duplicate_window = _duplicate_window(p)
    for userid in recipients:
        _dispatch(ctx, message, userid, duplicate_window)
    ctx.world.app_messages.append(message)
    trim_history(ctx.world.app_messages)
    result: Payload = {
        "invaliduser": "|".join(invalid_users),
        "invalidparty": "|".join(invalid_parties),
        "invalidtag": "|".join(invalid_tags),
        "unlicenseduser": "",
        "msgid": message.msgid,
    }
    if msgtype == "template_card":
        result["response_code"] = ids.random_string(32)
    return result


def _message_body(p: Params, msgtype: str) -> dict[str, Any]:
    body = p.obj(msgtype)
    if not body:
        raise invalid_param(f"{msgtype} is required for msgtype {msgtype}")
    if msgtype in ("text", "markdown"):
        content = Params(body, invalid_param).text("content")
        if not content:
            raise invalid_param(f"{msgtype}.content is required")
        check_utf8_bytes(f"{msgtype}.content", content, APP_TEXT_LIMIT, errcode=45002)
    return body


def _split(value: str, name: str, limit: int) -> list[str]:
    items = list(dict.fromkeys(item for item in value.split("|") if item))
    if len(items) > limit:
        raise invalid_param(f"{name} lists more than {limit} ids")
    return items


def _resolve_users(world: World, touser: str) -> tuple[list[str], list[str]]:
    requested = _split(touser, "touser", MAX_TOUSER)
    if "@all" in requested:
        return [m.userid for m in world.members.values() if m.status == 1], []
    valid = [u for u in requested if u in world.members and world.members[u].status == 1]
    return valid, [u for u in requested if u not in valid]


def _resolve_parties(world: World, toparty: str) -> tuple[list[str], list[str]]:
    requested = _split(toparty, "toparty", MAX_TOPARTY_TOTAG)
    invalid = [party for party in requested if party != ROOT_PARTY]
    if ROOT_PARTY not in requested:
        return [], invalid
    return [m.userid for m in world.members.values() if m.status == 1], invalid


def _duplicate_window(p: Params) -> int:
    if p.integer("enable_duplicate_check", 0, minimum=0, maximum=1) != 1:
        return 0
    return (
        p.integer(
            "duplicate_check_interval", DUPLICATE_INTERVAL_DEFAULT, minimum=1, maximum=DUPLICATE_INTERVAL_MAX
        )
        or DUPLICATE_INTERVAL_DEFAULT
    )


def _dispatch(ctx: WireContext, message: AppMessage, userid: str, duplicate_window: int) -> None:
    """Deliver to one member unless it is a duplicate or over the per-member frequency (silently dropped)."""
    now = ctx.clock.now()
    if duplicate_window and _is_duplicate(ctx.world, message, userid, now - duplicate_window):
        message.duplicate.append(userid)
        return
    history = [t for t in ctx.world.app_message_deliveries.get(userid, []) if t > now - 3600]
    last_minute = sum(1 for t in history if t > now - 60)
    if last_minute >= ctx.settings.app_msg_per_minute or len(history) >= ctx.settings.app_msg_per_hour:
        message.dropped.append(userid)
    else:
        history.append(now)
        message.delivered.append(userid)
    ctx.world.app_message_deliveries[userid] = history


def _is_duplicate(world: World, message: AppMessage, userid: str, since: float) -> bool:
    fingerprint = json.dumps(message.body, sort_keys=True)
    for previous in reversed(world.app_messages):
        if previous.sent_at < since:
            return False
        if (
            previous.msgtype == message.msgtype
            and userid in previous.delivered
            and json.dumps(previous.body, sort_keys=True) == fingerprint
        ):
            return True
    return False


ENDPOINTS: list[Endpoint] = [
    post("externalcontact/send_welcome_msg", send_welcome_msg, mutates=True),
    post("message/send", message_send, mutates=True, rate_limited=False),
]
