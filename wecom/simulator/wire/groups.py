"""Customer groups and group join ways (API.md §4, §5)."""

from __future__ import annotations

from .. import ids
from ..errors import ApiError, invalid_param
from ..params import Params
from ..state import GroupChat, GroupMember, JoinWay, World
from .base import Endpoint, Payload, WireContext, paginate, post
from .contact_ways import qr_code_url

MAX_JOIN_WAY_CHATS = 5
VISIBILITY_LIMIT = 1000


def require_chat(world: World, chat_id: str) -> GroupChat:
    if not chat_id:
        raise invalid_param("chat_id is required")
    chat = world.groups.get(chat_id)
    if chat is None:
        raise ApiError(40050, f"chat_id not found: {chat_id}")
    return chat


def groupchat_list(ctx: WireContext, p: Params) -> Payload:
    limit = p.integer("limit", minimum=1, maximum=1000)
    if limit is None:
        raise invalid_param("limit is required (1-1000)")
    status_filter = p.integer("status_filter", 0, minimum=0, maximum=3)
    owners = p.child("owner_filter").text_list("userid_list", max_items=100)
    if not owners and len(ctx.world.members) > VISIBILITY_LIMIT:
        raise ApiError(81017)
    chats = sorted(ctx.world.groups.values(), key=lambda c: (c.create_time, c.chat_id))
    chats = [
        c
        for c in chats
        if (not owners or c.owner in owners) and (status_filter == 0 or c.status == status_filter)
    ]
    page, next_cursor = paginate(chats, p.text("cursor"), limit)
    return {
        "group_chat_list": [{"chat_id": c.chat_id, "status": c.status} for c in page],
        "next_cursor": next_cursor,
    }


def _member_json(world: World, member: GroupMember, need_name: bool) -> Payload:
    data: Payload = {
        "userid": member.userid,
        "type": member.type,
        "join_time": member.join_time,
        "join_scene": member.join_scene,
        "group_nickname": member.group_nickname,
    }
    if member.unionid:
        data["unionid"] = member.unionid
    if member.invitor:
        data["invitor"] = {"userid": member.invitor}
    if need_name:
        data["name"] = world.display_name(member.userid) or member.name
    if member.state:
        data["state"] = member.state
    return data


def groupchat_get(ctx: WireContext, p: Params) -> Payload:
    chat = require_chat(ctx.world, p.text("chat_id"))
    need_name = p.integer("need_name", 0, minimum=0, maximum=1) == 1
    return {
        "group_chat": {
            "chat_id": chat.chat_id,
            "name": chat.name,
            "owner": chat.owner,
            "create_time": chat.create_time,
            "notice": chat.notice,
            "member_list": [_member_json(ctx.world, m, need_name) for m in chat.members],
            "admin_list": [{"userid": userid} for userid in chat.admin_list],
            "member_version": chat.member_version,
        }
    }


# --- join ways ---------------------------------------------------------------------------------------------


def join_way_json(ctx: WireContext, way: JoinWay) -> Payload:
    data: Payload = {
        "config_id": way.config_id,
        "scene": way.scene,
        "remark": way.remark,
        "auto_create_room": int(way.auto_create_room),
        "room_base_name": way.room_base_name,
        "room_base_id": way.room_base_id,
        "chat_id_list": list(way.chat_id_list),
        "state": way.state,
    }
    if way.scene == 2:
        data["qr_code"] = qr_code_url(ctx, way.config_id)
    return data


def _parse_join_way(ctx: WireContext, p: Params, way: JoinWay) -> None:
    """Validate the whole configuration, then overwrite ``way`` with it (add and update share this)."""
    if not p.has("scene"):
        raise ApiError(41038)
    scene = p.integer("scene")
    if scene not in (1, 2):
        raise ApiError(41040, f"invalid scene: {scene}")
    chat_ids = list(dict.fromkeys(p.text_list("chat_id_list")))
    if not chat_ids:
        raise invalid_param("chat_id_list is required")
    if len(chat_ids) > MAX_JOIN_WAY_CHATS:
        raise ApiError(41091, f"chat_id_list has {len(chat_ids)} chats, at most {MAX_JOIN_WAY_CHATS} allowed")
    for chat_id in chat_ids:
        require_chat(ctx.world, chat_id)
    room_base_name = p.text("room_base_name", max_len=40)
    room_base_id = p.integer("room_base_id", 0, minimum=0) or 0
    state = p.text("state", max_len=30)
    way.scene = scene
    way.remark = p.text("remark")[:30]
    way.auto_create_room = p.integer("auto_create_room", 1, minimum=0, maximum=1) == 1
    way.room_base_name, way.room_base_id = room_base_name, room_base_id
    way.chat_id_list, way.state = chat_ids, state


def _require_join_way(ctx: WireContext, p: Params) -> JoinWay:
    config_id = p.text("config_id")
    if not config_id:
        raise ApiError(41043)
    way = ctx.world.join_ways.get(config_id)
    if way is None:
        raise ApiError(41044, f"invalid config_id: {config_id}")
    return way


def add_join_way(ctx: WireContext, p: Params) -> Payload:
    way = JoinWay(config_id=ids.config_id(), scene=0, created_at=ctx.now)
    _parse_join_way(ctx, p, way)
    if ctx.world.quota_used() >= ctx.settings.contact_way_quota:
        raise ApiError(41045, f"contact way quota ({ctx.settings.contact_way_quota}) reached")
    ctx.world.join_ways[way.config_id] = way
    return {"config_id": way.config_id}


def get_join_way(ctx: WireContext, p: Params) -> Payload:
    return {"join_way": join_way_json(ctx, _require_join_way(ctx, p))}


def update_join_way(ctx: WireContext, p: Params) -> Payload:
    _parse_join_way(ctx, p, _require_join_way(ctx, p))
    return {}


def del_join_way(ctx: WireContext, p: Params) -> Payload:
    del ctx.world.join_ways[_require_join_way(ctx, p).config_id]
    return {}


ENDPOINTS: list[Endpoint] = [
    post("externalcontact/groupchat/list", groupchat_list),
    post("externalcontact/groupchat/get", groupchat_get),
    post("externalcontact/groupchat/add_join_way", add_join_way, mutates=True),
    post("externalcontact/groupchat/get_join_way", get_join_way),
    post("externalcontact/groupchat/update_join_way", update_join_way, mutates=True),
    post("externalcontact/groupchat/del_join_way", del_join_way, mutates=True),
]
