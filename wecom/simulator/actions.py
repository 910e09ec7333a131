"""Client and admin-console actions: what customers, members and admins do outside the API.

These are the only operations that fire callbacks (API.md §2.5): each mutates the world and emits the
matching encrypted event. They are exposed as ``POST /sim/actions/<name>`` and as console forms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import ids, quota
from .clock import Clock
from .config import Settings, SimulatorConfig
from .errors import bad_request, conflict, not_found
from .events import CallbackEvent, EventFactory
from .params import Params
from .state import (
    ContactWay,
    CorpTag,
    CorpTagGroup,
    Customer,
    FollowRecord,
    GroupChat,
    GroupMember,
    JoinWay,
    Member,
    WelcomeCode,
    World,
)
from .wire.contact_ways import way_people

Result = dict[str, Any]
CONSOLE = "console"
NAME_LIMIT = 30
STATE_LIMIT = 30
USERID_MAX = 64
WELCOME_CODE_RETENTION = 86400
# groupchat/get join_scene codes -> callback JoinScene codes (API.md §2.7: 0 invited, 3 QR).
JOIN_SCENE_QR = 3


@dataclass
class ActionContext:
    world: World
    clock: Clock
    settings: Settings
    config: SimulatorConfig
    events: EventFactory
    emit: Callable[[CallbackEvent], None]

    @property
    def now(self) -> int:
        return self.clock.now_int()


Action = Callable[[ActionContext, Params], Result]


# --- lookups ------------------------------------------------------------------------------------------------


def _member(ctx: ActionContext, userid: str) -> Member:
    member = ctx.world.members.get(userid)
    if member is None:
        raise not_found(f"unknown member userid {userid!r}")
    return member


def _contact_member(ctx: ActionContext, userid: str) -> Member:
    member = _member(ctx, userid)
    if member.status != 1 or not member.customer_contact:
        raise conflict(f"member {userid!r} is not active with customer contact enabled")
    return member


def _follow(ctx: ActionContext, p: Params) -> tuple[Customer, FollowRecord]:
    userid, external_userid = p.required_text("userid"), p.required_text("external_userid")
    customer = ctx.world.customers.get(external_userid)
    follow = customer.follows.get(userid) if customer else None
    if customer is None or follow is None:
        raise not_found(f"{external_userid!r} is not a customer of {userid!r}")
    return customer, follow


def _chat(ctx: ActionContext, chat_id: str) -> GroupChat:
    chat = ctx.world.groups.get(chat_id)
    if chat is None:
        raise not_found(f"unknown chat_id {chat_id!r}")
    return chat


def _check_tags_exist(ctx: ActionContext, tag_ids: list[str]) -> None:
    missing = [t for t in tag_ids if ctx.world.find_tag(t) is None]
    if missing:
        raise bad_request(f"unknown tag ids: {', '.join(missing)}")


# --- staff --------------------------------------------------------------------------------------------------


def add_member(ctx: ActionContext, p: Params) -> Result:
    """Admin adds a staff member (no callback: member changes are outside the customer-contact events)."""
    userid = p.required_text("userid", max_len=USERID_MAX)
    if userid in ctx.world.members:
        raise conflict(f"member {userid!r} already exists")
    member = Member(
        userid=userid,
        name=p.required_text("name", max_len=64),
        mobile=p.text("mobile", max_len=32),
        customer_contact=p.boolean("customer_contact", True),
    )
    ctx.world.members[userid] = member
    return {"userid": member.userid, "name": member.name}


# --- customers ----------------------------------------------------------------------------------------------


def add_contact(ctx: ActionContext, p: Params) -> Result:
    """A customer adds a member, directly or by scanning a contact way (``config_id``)."""
    way = _usable_contact_way(ctx, p.text("config_id")) if p.has("config_id") else None
    userid = _adding_member(ctx, p, way)
    _contact_member(ctx, userid)
    state = p.text("state", way.state if way else "", max_len=STATE_LIMIT)
    customer = _customer_for_add(ctx, p)
    if userid in customer.follows:
        raise conflict(f"{customer.external_userid!r} is already a customer of {userid!r}")
    customer.follows[userid] = FollowRecord(
        userid=userid,
        createtime=ctx.now,
        state=state,
        add_way=1 if way else (p.integer("add_way", 1, minimum=0) or 0),
        oper_userid=customer.external_userid,
    )
    ctx.world.customers[customer.external_userid] = customer
    if way is not None and way.is_temp:
        way.used = True
    code = "" if p.boolean("no_welcome_code") else _issue_welcome_code(ctx, userid, customer.external_userid)
    change_type = "add_half_external_contact" if p.boolean("half") else "add_external_contact"
    ctx.emit(
        ctx.events.contact(change_type, userid, customer.external_userid, state=state, welcome_code=code)
    )
    return {
        "external_userid": customer.external_userid,
        "userid": userid,
        "welcome_code": code,
        "state": state,
    }


def _usable_contact_way(ctx: ActionContext, config_id: str) -> ContactWay:
    way = ctx.world.contact_ways.get(config_id)
    if way is None:
        raise not_found(f"unknown contact way config_id {config_id!r}")
    if way.is_temp and way.used:
        raise conflict("this temporary contact way was already used")
    if way.is_temp and way.created_at + way.expires_in < ctx.now:
        raise conflict("this temporary contact way has expired")
    return way


def _adding_member(ctx: ActionContext, p: Params, way: ContactWay | None) -> str:
    """The member being added: explicit, or picked round-robin from the contact way's people."""
    userid = p.text("userid").strip()
    if way is None:
        if not userid:
            raise bad_request("userid or config_id is required")
        return userid
    people = way_people(ctx.world, way)
    if not people:
        raise conflict("the contact way has no member to add")
    if userid:
        if userid not in people:
            raise bad_request(f"{userid!r} is not a member of contact way {way.config_id}")
        return userid
    picked = people[way.next_user_index % len(people)]
    way.next_user_index += 1
    return picked


def _customer_for_add(ctx: ActionContext, p: Params) -> Customer:
    external_userid = p.text("external_userid", max_len=USERID_MAX).strip()
    existing = ctx.world.customers.get(external_userid) if external_userid else None
    if existing is not None:
        if p.has("unionid") and not existing.unionid:
            existing.unionid = p.text("unionid")
        return existing
    if not external_userid:
        external_userid = ids.external_userid()
        while external_userid in ctx.world.customers:
            external_userid = ids.external_userid()
    return Customer(
        external_userid=external_userid,
        name=p.text("name", max_len=64) or f"微信用户{external_userid[-4:]}",
        gender=p.integer("gender", 0, minimum=0, maximum=2) or 0,
        unionid=p.text("unionid", max_len=64),
        avatar=p.text("avatar", max_len=512),
    )


def _issue_welcome_code(ctx: ActionContext, userid: str, external_userid: str) -> str:
    now = ctx.clock.now()
    ctx.world.welcome_codes = {
        code: record
        for code, record in ctx.world.welcome_codes.items()
        if record.issued_at > now - WELCOME_CODE_RETENTION
    }
    record = WelcomeCode(
        code=ids.welcome_code(), userid=userid, external_userid=external_userid, issued_at=now
    )
    ctx.world.welcome_codes[record.code] = record
    return record.code


def customer_deletes_member(ctx: ActionContext, p: Params) -> Result:
    customer, follow = _follow(ctx, p)
    del customer.follows[follow.userid]
    ctx.emit(ctx.events.contact("del_follow_user", follow.userid, customer.external_userid))
    return {"userid": follow.userid, "external_userid": customer.external_userid}


def member_deletes_customer(ctx: ActionContext, p: Params) -> Result:
    source = p.text("source", max_len=64)
    customer, follow = _follow(ctx, p)
    del customer.follows[follow.userid]
    ctx.emit(
        ctx.events.contact("del_external_contact", follow.userid, customer.external_userid, source=source)
    )
    return {"userid": follow.userid, "external_userid": customer.external_userid}


def edit_contact_in_client(ctx: ActionContext, p: Params) -> Result:
    """The member edits remark / description / corp tags in the client. Editing only the remark phone
    numbers changes the record but fires no callback (API.md §2.6)."""
    customer, follow = _follow(ctx, p)
    add_tags, remove_tags = p.text_list("add_tag"), p.text_list("remove_tag")
    _check_tags_exist(ctx, [*add_tags, *remove_tags])
    notable = [name for name in ("remark", "description") if name in p.raw] + (
        ["tags"] if add_tags or remove_tags else []
    )
    if not notable and "remark_mobiles" not in p.raw:
        raise bad_request("nothing to edit: give remark, description, add_tag, remove_tag or remark_mobiles")
    remark = p.text("remark", follow.remark, max_len=20)
    description = p.text("description", follow.description, max_len=150)
    mobiles = (
        p.text_list("remark_mobiles", max_items=5) if "remark_mobiles" in p.raw else follow.remark_mobiles
    )
    follow.remark, follow.description, follow.remark_mobiles = remark, description, mobiles
    removed = set(remove_tags)
    follow.tag_ids = [t for t in follow.tag_ids if t not in removed]
    follow.tag_ids.extend(t for t in dict.fromkeys(add_tags) if t not in follow.tag_ids)
    if notable:
        ctx.emit(ctx.events.contact("edit_external_contact", follow.userid, customer.external_userid))
    return {"userid": follow.userid, "external_userid": customer.external_userid, "callback": bool(notable)}


# --- customer groups ----------------------------------------------------------------------------------------


def create_group(ctx: ActionContext, p: Params) -> Result:
    owner = _member(ctx, p.required_text("owner")).userid
    chat_id = p.text("chat_id", max_len=USERID_MAX).strip() or ids.chat_id()
    if chat_id in ctx.world.groups:
        raise conflict(f"chat {chat_id!r} already exists")
    joiners = [m for m in dict.fromkeys(p.text_list("members")) if m != owner]
    if len(joiners) + 1 > ctx.settings.group_capacity:
        raise conflict(f"a group holds at most {ctx.settings.group_capacity} members")
    chat = GroupChat(
        chat_id=chat_id,
        name=p.text("name", max_len=64),
        owner=owner,
        create_time=ctx.now,
        notice=p.text("notice", max_len=1000),
    )
    chat.members.append(GroupMember(userid=owner, type=1, join_time=ctx.now, join_scene=1))
    chat.members.extend(_new_group_member(ctx, member_id, 1, "", owner) for member_id in joiners)
    ctx.world.groups[chat.chat_id] = chat
    ctx.emit(ctx.events.chat("create", chat.chat_id))
    return {"chat_id": chat.chat_id, "member_version": chat.member_version}


def _new_group_member(
    ctx: ActionContext, member_id: str, join_scene: int, state: str, invitor: str
) -> GroupMember:
    customer = ctx.world.customers.peek(member_id)
    return GroupMember(
        userid=member_id,
        type=1 if member_id in ctx.world.members else 2,
        join_time=ctx.now,
        join_scene=join_scene,
        invitor=invitor if join_scene in (1, 2) else "",
        name=ctx.world.display_name(member_id),
        unionid=customer.unionid if customer else "",
        state=state,
    )


def join_group(ctx: ActionContext, p: Params) -> Result:
    """Customers join a group: by invitation (join_scene 1/2), by the group QR (3), or through a join way
    (``config_id``: the first group of the way with room; a new one is auto-created when all are full)."""
    joiners = list(dict.fromkeys(p.text_list("external_userids")))
    if not joiners:
        raise bad_request("external_userids is required")
    if p.has("config_id"):
        way = ctx.world.join_ways.get(p.text("config_id"))
        if way is None:
            raise not_found(f"unknown join way config_id {p.text('config_id')!r}")
        chat = _join_way_target(ctx, way, len(joiners))
        join_scene, state = JOIN_SCENE_QR, p.text("state", way.state, max_len=STATE_LIMIT)
    else:
        chat = _chat(ctx, p.required_text("chat_id"))
        join_scene = p.integer("join_scene", JOIN_SCENE_QR, minimum=1, maximum=3) or JOIN_SCENE_QR
        state = p.text("state", max_len=STATE_LIMIT)
        if len(chat.members) + len(joiners) > ctx.settings.group_capacity:
            raise conflict(f"the group would exceed {ctx.settings.group_capacity} members")
    already = [m for m in joiners if chat.member(m) is not None]
    if already:
        raise conflict(f"already in the group: {', '.join(already)}")
    invitor = p.text("invitor") or chat.owner
    last_version = chat.member_version
    chat.members.extend(
        _new_group_member(ctx, member_id, join_scene, state, invitor) for member_id in joiners
    )
    chat.revision += 1
    ctx.emit(
        ctx.events.chat_members(
            chat.chat_id,
            joined=True,
            scene=3 if join_scene == JOIN_SCENE_QR else 0,
            member_ids=joiners,
            last_version=last_version,
            current_version=chat.member_version,
        )
    )
    return {"chat_id": chat.chat_id, "joined": joiners, "member_version": chat.member_version}


def _join_way_target(ctx: ActionContext, way: JoinWay, count: int) -> GroupChat:
    for chat_id in way.chat_id_list:
        chat = ctx.world.groups.get(chat_id)
        if chat is not None and _has_qr_room(ctx, chat, count):
            return chat
    if not way.auto_create_room:
        raise conflict("every group of this join way is full and auto_create_room is off")
    return _auto_create_room(ctx, way)


def _has_qr_room(ctx: ActionContext, chat: GroupChat, count: int) -> bool:
    return (
        chat.qr_join_count() + count <= ctx.settings.join_way_qr_capacity
        and len(chat.members) + count <= ctx.settings.group_capacity
    )


def _auto_create_room(ctx: ActionContext, way: JoinWay) -> GroupChat:
    """Name = room_base_name + room_base_id (then the id counts up); owned by the first group's owner.
    The new chat is appended to the way's chat_id_list (which may then exceed 5)."""
    template = next((ctx.world.groups[c] for c in way.chat_id_list if c in ctx.world.groups), None)
    if template is None:
        raise conflict("the join way has no remaining group to take an owner from")
    chat = GroupChat(
        chat_id=ids.chat_id(),
        name=f"{way.room_base_name or template.name}{way.room_base_id}",
        owner=template.owner,
        create_time=ctx.now,
    )
    way.room_base_id += 1
    chat.members.append(GroupMember(userid=chat.owner, type=1, join_time=ctx.now, join_scene=1))
    ctx.world.groups[chat.chat_id] = chat
    way.chat_id_list.append(chat.chat_id)
    ctx.emit(ctx.events.chat("create", chat.chat_id))
    return chat


def leave_group(ctx: ActionContext, p: Params) -> Result:
    chat = _chat(ctx, p.required_text("chat_id"))
    leavers = list(dict.fromkeys(p.text_list("external_userids")))
    if not leavers:
        raise bad_request("external_userids is required")
    if chat.owner in leavers:
        raise conflict("the owner cannot leave; dismiss the group or change its owner first")
    missing = [m for m in leavers if chat.member(m) is None]
    if missing:
        raise conflict(f"not in the group: {', '.join(missing)}")
    quit_scene = p.integer("quit_scene", 0, minimum=0, maximum=1) or 0
    last_version = chat.member_version
    leaving = set(leavers)
    chat.members = [m for m in chat.members if m.userid not in leaving]
    chat.admin_list = [a for a in chat.admin_list if a not in leaving]
    chat.revision += 1
    ctx.emit(
        ctx.events.chat_members(
            chat.chat_id,
            joined=False,
            scene=quit_scene,
            member_ids=leavers,
            last_version=last_version,
            current_version=chat.member_version,
        )
    )
    return {"chat_id": chat.chat_id, "left": leavers, "member_version": chat.member_version}


def rename_group(ctx: ActionContext, p: Params) -> Result:
    chat = _chat(ctx, p.required_text("chat_id"))
    chat.name = p.required_text("name", max_len=64)
    ctx.emit(ctx.events.chat("update", chat.chat_id, update_detail="change_name"))
    return {"chat_id": chat.chat_id, "name": chat.name}


def change_group_notice(ctx: ActionContext, p: Params) -> Result:
    chat = _chat(ctx, p.required_text("chat_id"))
    chat.notice = p.text("notice", max_len=1000)
    ctx.emit(ctx.events.chat("update", chat.chat_id, update_detail="change_notice"))
    return {"chat_id": chat.chat_id, "notice": chat.notice}


def change_group_owner(ctx: ActionContext, p: Params) -> Result:
    chat = _chat(ctx, p.required_text("chat_id"))
    new_owner = _member(ctx, p.required_text("new_owner")).userid
    if new_owner == chat.owner:
        raise conflict(f"{new_owner!r} already owns the group")
    if chat.member(new_owner) is None:
        raise conflict(f"{new_owner!r} must be in the group to become its owner")
    chat.owner = new_owner
    ctx.emit(ctx.events.chat("update", chat.chat_id, update_detail="change_owner"))
    return {"chat_id": chat.chat_id, "owner": chat.owner}


def dismiss_group(ctx: ActionContext, p: Params) -> Result:
    chat = _chat(ctx, p.required_text("chat_id"))
    del ctx.world.groups[chat.chat_id]
    for way in ctx.world.join_ways.values():
        way.chat_id_list = [c for c in way.chat_id_list if c != chat.chat_id]
    ctx.emit(ctx.events.chat("dismiss", chat.chat_id))
    return {"chat_id": chat.chat_id}


# --- corp tags in the admin console -------------------------------------------------------------------------


def client_tag(ctx: ActionContext, p: Params) -> Result:
    change_type = p.required_text("change_type")
    handlers: dict[str, Action] = {
        "create": _console_create_tag,
        "update": _console_update_tag,
        "delete": _console_delete_tag,
        "shuffle": _console_shuffle_tags,
    }
    if change_type not in handlers:
        raise bad_request("change_type must be create, update, delete or shuffle")
    return handlers[change_type](ctx, p)


def _console_create_tag(ctx: ActionContext, p: Params) -> Result:
    group_name = p.required_text("group_name", max_len=NAME_LIMIT)
    name = p.required_text("name", max_len=NAME_LIMIT)
    if ctx.world.tag_count() >= ctx.settings.corp_tag_limit:
        raise conflict(f"the corp already has {ctx.settings.corp_tag_limit} tags")
    group = ctx.world.tag_group_by_name(group_name)
    if group is not None and any(t.name == name for t in group.tags):
        raise conflict(f"tag {name!r} already exists in {group_name!r}")
    if group is None:
        group = CorpTagGroup(
            group_id=ids.tag_id(), group_name=group_name, create_time=ctx.now, creator=CONSOLE
        )
        ctx.world.tag_groups[group.group_id] = group
        ctx.emit(ctx.events.tag("create", group.group_id, "tag_group"))
    tag = CorpTag(
        id=ids.tag_id(),
        name=name,
        create_time=ctx.now,
        order=p.integer("order", 0, minimum=0) or 0,
        creator=CONSOLE,
    )
    group.tags.append(tag)
    ctx.emit(ctx.events.tag("create", tag.id, "tag"))
    return {"id": tag.id, "group_id": group.group_id, "tag_type": "tag"}


def _console_update_tag(ctx: ActionContext, p: Params) -> Result:
    target_id = p.required_text("id")
    name = p.required_text("name", max_len=NAME_LIMIT)
    if (group := ctx.world.tag_groups.get(target_id)) is not None:
        clash = ctx.world.tag_group_by_name(name)
        if clash is not None and clash is not group:
            raise conflict(f"tag group {name!r} already exists")
        group.group_name = name
        tag_type = "tag_group"
    else:
        found = ctx.world.find_tag(target_id)
        if found is None:
            raise not_found(f"unknown tag or tag group id {target_id!r}")
        owner_group, tag = found
        if any(t.name == name and t is not tag for t in owner_group.tags):
            raise conflict(f"tag {name!r} already exists in {owner_group.group_name!r}")
        tag.name = name
        tag_type = "tag"
    ctx.emit(ctx.events.tag("update", target_id, tag_type))
    return {"id": target_id, "tag_type": tag_type}


def _console_delete_tag(ctx: ActionContext, p: Params) -> Result:
    target_id = p.required_text("id")
    if (group := ctx.world.tag_groups.pop(target_id, None)) is not None:
        ctx.world.forget_tags({t.id for t in group.tags})
        tag_type = "tag_group"
    else:
        found = ctx.world.find_tag(target_id)
        if found is None:
            raise not_found(f"unknown tag or tag group id {target_id!r}")
        owner_group, _ = found
        owner_group.tags = [t for t in owner_group.tags if t.id != target_id]
        if not owner_group.tags:
            del ctx.world.tag_groups[owner_group.group_id]
        ctx.world.forget_tags({target_id})
        tag_type = "tag"
    ctx.emit(ctx.events.tag("delete", target_id, tag_type))
    return {"id": target_id, "tag_type": tag_type}


def _console_shuffle_tags(ctx: ActionContext, p: Params) -> Result:
    """Reverse the display order of one group's tags (``id`` = group id) or, without id, of the groups."""
    target_id = p.text("id")
    if target_id:
        group = ctx.world.tag_groups.get(target_id)
        if group is None:
            raise not_found(f"unknown tag group id {target_id!r}")
        ordered = sorted(group.tags, key=lambda t: (-t.order, t.create_time, t.id))
        for rank, tag in enumerate(ordered):
            tag.order = rank
    else:
        groups = sorted(ctx.world.tag_groups.values(), key=lambda g: (-g.order, g.create_time, g.group_id))
        for rank, group in enumerate(groups):
            group.order = rank
    ctx.emit(ctx.events.tag("shuffle", target_id))
    return {"id": target_id}


# --- mass messages ------------------------------------------------------------------------------------------


def confirm_mass_msg(ctx: ActionContext, p: Params) -> Result:
    """The member taps send in 群发助手: settle each recipient (1 sent, 2 not a friend / gone, 3 over quota).
    No callback exists for this in WeCom; the results are read with get_groupmsg_send_result."""
    msgid, userid = p.required_text("msgid"), p.required_text("userid")
    message = ctx.world.mass_messages.get(msgid)
    if message is None:
        raise not_found(f"unknown msgid {msgid!r}")
    if message.cancelled:
        raise conflict("the mass message was cancelled")
    task = message.task(userid)
    if task is None:
        raise not_found(f"{userid!r} has no task in {msgid}")
    if task.status == 2:
        raise conflict(f"{userid!r} already sent {msgid}")
    counts = {1: 0, 2: 0, 3: 0}
    for row in message.recipients:
        if row.userid != userid:
            continue
        row.status = _settle(ctx, message.chat_type, userid, row.target)
        row.send_time = ctx.now if row.status == 1 else 0
        counts[row.status] += 1
    task.status, task.send_time = 2, ctx.now
    return {
        "msgid": msgid,
        "userid": userid,
        "sent": counts[1],
        "not_friend": counts[2],
        "over_quota": counts[3],
    }


def _settle(ctx: ActionContext, chat_type: str, userid: str, target: str) -> int:
    if chat_type == "single":
        reachable = ctx.world.follow(userid, target) is not None
    else:
        reachable = target in ctx.world.groups
    if not reachable:
        return 2
    return 1 if quota.try_receive(ctx.world, ctx.settings, target, ctx.now) else 3


ACTIONS: dict[str, Action] = {
    "add_contact": add_contact,
    "customer_deletes_member": customer_deletes_member,
    "member_deletes_customer": member_deletes_customer,
    "edit_contact_in_client": edit_contact_in_client,
    "create_group": create_group,
    "join_group": join_group,
    "leave_group": leave_group,
    "rename_group": rename_group,
    "change_group_notice": change_group_notice,
    "change_group_owner": change_group_owner,
    "dismiss_group": dismiss_group,
    "client_tag": client_tag,
    "confirm_mass_msg": confirm_mass_msg,
}
