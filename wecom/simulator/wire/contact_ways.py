"""「联系我」 contact ways (API.md §3). Members are not modelled in departments: party id 1 (the root
department) stands for every member; other party ids are unknown (60123)."""

from __future__ import annotations

from typing import Any

from .. import ids
from ..errors import ApiError, invalid_param
from ..params import Params
from ..state import ContactWay, World
from .base import Endpoint, Payload, WireContext, paginate, post, require_contact_member

ROOT_PARTY = 1
TEXT_LIMIT = 30
MAX_PEOPLE = 100
DAY = 86400
TEMP_EXPIRES_DEFAULT, TEMP_EXPIRES_MAX = 7 * DAY, 14 * DAY
CHAT_EXPIRES_DEFAULT, CHAT_EXPIRES_MAX = DAY, 14 * DAY
LIST_WINDOW = 90 * DAY


def qr_code_url(ctx: WireContext, config_id: str) -> str:
    return f"{ctx.public_url}/sim/qr/{config_id}.png"


def way_people(world: World, way: ContactWay) -> list[str]:
    """Members reachable through the way: listed users, then members of listed parties (no duplicates)."""
    people = list(way.users)
    if ROOT_PARTY in way.parties:
        people.extend(m.userid for m in world.members.values() if m.customer_contact and m.status == 1)
    return list(dict.fromkeys(people))


def contact_way_json(ctx: WireContext, way: ContactWay) -> Payload:
    data: Payload = {
        "config_id": way.config_id,
        "type": way.type,
        "scene": way.scene,
        "style": way.style,
        "remark": way.remark,
        "skip_verify": way.skip_verify,
        "state": way.state,
        "user": list(way.users),
        "party": list(way.parties),
        "is_temp": way.is_temp,
        "expires_in": way.expires_in,
        "chat_expires_in": way.chat_expires_in,
        "unionid": way.unionid,
        "is_exclusive": way.is_exclusive,
        "conclusions": way.conclusions,
    }
    if way.scene == 2:
        data["qr_code"] = qr_code_url(ctx, way.config_id)
    return data


def add_contact_way(ctx: WireContext, p: Params) -> Payload:
    if not p.has("type"):
        raise ApiError(41037)
    if not p.has("scene"):
        raise ApiError(41038)
    way_type = p.integer("type")
    if way_type not in (1, 2):
        raise ApiError(41039, f"invalid type: {way_type}")
    scene = p.integer("scene")
    if scene not in (1, 2):
        raise ApiError(41040, f"invalid scene: {scene}")
    way = ContactWay(config_id=ids.config_id(), type=way_type, scene=scene, created_at=ctx.now)
    way.is_temp = p.boolean("is_temp")
    _apply_fields(ctx, way, p)
    if not way.is_temp and ctx.world.quota_used() >= ctx.settings.contact_way_quota:
        raise ApiError(41045, f"contact way quota ({ctx.settings.contact_way_quota}) reached")
    ctx.world.contact_ways[way.config_id] = way
    result: Payload = {"config_id": way.config_id}
    if scene == 2:
        result["qr_code"] = qr_code_url(ctx, way.config_id)
    return result


def _apply_fields(ctx: WireContext, way: ContactWay, p: Params) -> None:
    """Validate everything first, then assign; used by add (all fields) and update (given fields)."""
    style = p.integer("style", way.style)
    if style is None or style < 1:
        raise ApiError(41042, f"invalid style: {style}")
    remark = p.text("remark", way.remark, max_len=TEXT_LIMIT)
    state = p.text("state", way.state, max_len=TEXT_LIMIT)
    users = p.text_list("user") if "user" in p.raw else way.users
    parties = p.integer_list("party") if "party" in p.raw else way.parties
    _check_people(ctx, way, users, parties)
    expires_in, chat_expires_in, unionid, conclusions = _temp_fields(way, p)
    way.style, way.remark, way.state = style, remark, state
    way.skip_verify = p.boolean("skip_verify", way.skip_verify)
    way.is_exclusive = p.boolean("is_exclusive", way.is_exclusive)
    way.users, way.parties = list(dict.fromkeys(users)), list(dict.fromkeys(parties))
    way.expires_in, way.chat_expires_in, way.unionid, way.conclusions = (
        expires_in,
        chat_expires_in,
        unionid,
        conclusions,
    )


def _check_people(ctx: WireContext, way: ContactWay, users: list[str], parties: list[int]) -> None:
    for userid in users:
        require_contact_member(ctx.world, userid)
    for party in parties:
        if party != ROOT_PARTY:
            raise ApiError(60123, f"invalid party id: {party}")
    if way.type == 1 and (len(users) != 1 or parties):
        raise invalid_param("type 1 needs exactly one user and no party")
    if way.type == 2 and not users and not parties:
        raise invalid_param("type 2 needs user or party")
    probe = ContactWay(
        config_id="", type=way.type, scene=way.scene, created_at=0, users=users, parties=parties
    )
    if len(way_people(ctx.world, probe)) > MAX_PEOPLE:
        raise ApiError(41041)


def _temp_fields(way: ContactWay, p: Params) -> tuple[int, int, str, dict[str, Any]]:
    if not way.is_temp:
        return 0, 0, "", {}
    if way.type != 1:
        raise invalid_param("temporary contact ways must be type 1 (a single member)")
    expires_in = p.integer(
        "expires_in", way.expires_in or TEMP_EXPIRES_DEFAULT, minimum=1, maximum=TEMP_EXPIRES_MAX
    )
    chat_expires_in = p.integer(
        "chat_expires_in", way.chat_expires_in or CHAT_EXPIRES_DEFAULT, minimum=1, maximum=CHAT_EXPIRES_MAX
    )
    conclusions = p.obj("conclusions") if "conclusions" in p.raw else way.conclusions
    return expires_in or 0, chat_expires_in or 0, p.text("unionid", way.unionid), conclusions


def _require_way(ctx: WireContext, p: Params) -> ContactWay:
    config_id = p.text("config_id")
    if not config_id:
        raise ApiError(41043)
    way = ctx.world.contact_ways.get(config_id)
    if way is None:
        raise ApiError(41044, f"invalid config_id: {config_id}")
    return way


def get_contact_way(ctx: WireContext, p: Params) -> Payload:
    return {"contact_way": contact_way_json(ctx, _require_way(ctx, p))}


def update_contact_way(ctx: WireContext, p: Params) -> Payload:
    _apply_fields(ctx, _require_way(ctx, p), p)
    return {}


def del_contact_way(ctx: WireContext, p: Params) -> Payload:
    del ctx.world.contact_ways[_require_way(ctx, p).config_id]
    return {}


def list_contact_way(ctx: WireContext, p: Params) -> Payload:
    end_time = p.integer("end_time", ctx.now) or ctx.now
    start_time = p.integer("start_time", end_time - LIST_WINDOW) or 0
    if start_time > end_time:
        raise invalid_param("start_time is after end_time")
    limit = p.integer("limit", 100, minimum=1, maximum=1000) or 100
    ways = sorted(
        (
            w
            for w in ctx.world.contact_ways.values()
            if not w.is_temp and start_time <= w.created_at <= end_time
        ),
        key=lambda w: (w.created_at, w.config_id),
    )
    page, next_cursor = paginate(ways, p.text("cursor"), limit)
    result: Payload = {"contact_way": [{"config_id": w.config_id} for w in page]}
    if next_cursor:
        result["next_cursor"] = next_cursor
    return result


ENDPOINTS: list[Endpoint] = [
    post("externalcontact/add_contact_way", add_contact_way, mutates=True),
    post("externalcontact/get_contact_way", get_contact_way),
    post("externalcontact/update_contact_way", update_contact_way, mutates=True),
    post("externalcontact/del_contact_way", del_contact_way, mutates=True),
    post("externalcontact/list_contact_way", list_contact_way),
]
