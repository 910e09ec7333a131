"""Mass messages to customers / customer groups (API.md §6.1-6.2).

The API only creates tasks (one per sender, status 0). Nothing reaches anyone until the member confirms in
the client — the ``confirm_mass_msg`` control action — which settles per-recipient results.
"""

from __future__ import annotations

from .. import ids
from ..errors import ApiError, invalid_param
from ..params import Params
from ..state import Customer, FollowRecord, MassMessage, MassRecipient, MassTask
from .base import (
    Endpoint,
    Payload,
    WireContext,
    paginate,
    parse_attachments,
    parse_text,
    post,
    require_contact_member,
    require_member,
)

MAX_SINGLE_RECIPIENTS = 10_000
MAX_GROUP_RECIPIENTS = 2_000
MAX_LIST_SPAN = 31 * 86400
REMIND_LIMIT = 3
REMIND_WINDOW = 86400

Assignments = dict[str, list[str]]


def add_msg_template(ctx: WireContext, p: Params) -> Payload:
    chat_type = p.text("chat_type", "single") or "single"
    if chat_type not in ("single", "group"):
        raise invalid_param(f"chat_type must be single or group, not {chat_type!r}")
    text = parse_text(p, limit=4000)
    attachments = parse_attachments(ctx, p)
    if not text and not attachments:
        raise invalid_param("text and attachments cannot both be empty")
    sender = p.text("sender")
    if sender:
        require_contact_member(ctx.world, sender)
    if chat_type == "single":
        assignments, fail_list = _single_recipients(ctx, p, sender)
    else:
        assignments, fail_list = _group_recipients(ctx, p, sender)
    if not assignments:
        raise ApiError(41048)
    message = MassMessage(
        msgid=ids.mass_msgid(),
        chat_type=chat_type,
        create_time=ctx.now,
        text=text,
        attachments=attachments,
        allow_select=p.boolean("allow_select"),
    )
    for userid, targets in assignments.items():
        message.tasks.append(MassTask(userid=userid))
        message.recipients.extend(MassRecipient(userid=userid, target=target) for target in targets)
    ctx.world.mass_messages[message.msgid] = message
    return {"fail_list": fail_list, "msgid": message.msgid}


def _single_recipients(ctx: WireContext, p: Params, sender: str) -> tuple[Assignments, list[str]]:
    external_ids = list(dict.fromkeys(p.text_list("external_userid")))
    if len(external_ids) > MAX_SINGLE_RECIPIENTS:
        raise invalid_param(f"external_userid has more than {MAX_SINGLE_RECIPIENTS} ids")
    if not external_ids and not sender:
        raise invalid_param("external_userid and sender cannot both be empty")
    tag_filter = _tag_filter(ctx, p)
    assignments: Assignments = {}
    fail_list: list[str] = []
    if external_ids:
        for external_userid in external_ids:
            customer = ctx.world.customers.peek(external_userid)  # read only: a million may be targeted
            follow = _pick_follower(ctx, customer, sender) if customer else None
            if follow is None:
                fail_list.append(external_userid)
            elif _matches(follow.tag_ids, tag_filter):
                # the stored id string, not the request's copy: recipient rows then share it
                assignments.setdefault(follow.userid, []).append(customer.external_userid)
    else:
        for customer in ctx.world.customers_of(sender):
            if _matches(customer.follows[sender].tag_ids, tag_filter):
                assignments.setdefault(sender, []).append(customer.external_userid)
    return assignments, fail_list


def _pick_follower(ctx: WireContext, customer: Customer, sender: str) -> FollowRecord | None:
    """The sender's relationship, or — without a sender — the most recent one (WeCom routes the task to the
    member who last chatted with the customer; the newest relationship stands in for that)."""
    if sender:
        return customer.follows.get(sender)
    candidates = [
        f
        for f in customer.follows.values()
        if (m := ctx.world.members.get(f.userid)) is not None and m.customer_contact and m.status == 1
    ]
    return max(candidates, key=lambda f: (f.createtime, f.userid), default=None)


def _tag_filter(ctx: WireContext, p: Params) -> list[set[str]]:
    """tag_filter.group_list: a recipient needs one tag of every listed group (AND of ORs)."""
    groups = []
    for item in p.child("tag_filter").obj_list("group_list"):
        tag_ids = set(Params(item, invalid_param).text_list("tag_list"))
        for tag_id in tag_ids:
            if ctx.world.find_tag(tag_id) is None:
                raise ApiError(40068, f"invalid tag id in tag_filter: {tag_id}")
        if tag_ids:
            groups.append(tag_ids)
    return groups


def _matches(tag_ids: list[str], tag_filter: list[set[str]]) -> bool:
    return all(group & set(tag_ids) for group in tag_filter)


def _group_recipients(ctx: WireContext, p: Params, sender: str) -> tuple[Assignments, list[str]]:
    if not sender:
        raise invalid_param("sender is required when chat_type is group")
    chat_ids = list(dict.fromkeys(p.text_list("chat_id_list")))
    if len(chat_ids) > MAX_GROUP_RECIPIENTS:
        raise invalid_param(f"chat_id_list has more than {MAX_GROUP_RECIPIENTS} ids")
    if not chat_ids:
        owned = sorted(
            (c for c in ctx.world.groups.values() if c.owner == sender), key=lambda c: c.create_time
        )
        return ({sender: [c.chat_id for c in owned]} if owned else {}), []
    valid = [cid for cid in chat_ids if (c := ctx.world.groups.get(cid)) is not None and c.owner == sender]
    fail_list = [cid for cid in chat_ids if cid not in valid]
    return ({sender: valid} if valid else {}), fail_list


def _require_message(ctx: WireContext, p: Params) -> MassMessage:
    msgid = p.text("msgid")
    if not msgid:
        raise ApiError(41046)
    message = ctx.world.mass_messages.get(msgid)
    if message is None:
        raise ApiError(41047, f"invalid msgid: {msgid}")
    return message


def get_groupmsg_list_v2(ctx: WireContext, p: Params) -> Payload:
    chat_type = p.text("chat_type", "single") or "single"
    if chat_type not in ("single", "group"):
        raise invalid_param(f"chat_type must be single or group, not {chat_type!r}")
    start_time, end_time = p.required_integer("start_time"), p.required_integer("end_time")
    if end_time < start_time or end_time - start_time > MAX_LIST_SPAN:
        raise invalid_param("end_time must follow start_time by at most one month")
    filter_type = p.integer("filter_type", 2, minimum=0, maximum=2)
    creator = p.text("creator")
    limit = p.integer("limit", 50, minimum=1, maximum=100) or 50
    messages = sorted(
        (
            m
            for m in ctx.world.mass_messages.values()
            if m.chat_type == chat_type
            and start_time <= m.create_time <= end_time
            and (filter_type == 2 or m.create_type == filter_type)
            and (not creator or m.creator == creator)
        ),
        key=lambda m: (m.create_time, m.msgid),
    )
    page, next_cursor = paginate(messages, p.text("cursor"), limit)
    return {"group_msg_list": [_message_json(m) for m in page], "next_cursor": next_cursor}


def _message_json(message: MassMessage) -> Payload:
    data: Payload = {
        "msgid": message.msgid,
        "create_time": message.create_time,
        "create_type": message.create_type,
    }
    if message.creator:
        data["creator"] = message.creator
    if message.text:
        data["text"] = message.text
    data["attachments"] = message.attachments
    return data


def get_groupmsg_task(ctx: WireContext, p: Params) -> Payload:
    message = _require_message(ctx, p)
    limit = p.integer("limit", 500, minimum=1, maximum=1000) or 500
    page, next_cursor = paginate(message.tasks, p.text("cursor"), limit)
    tasks = []
    for task in page:
        item: Payload = {"userid": task.userid, "status": task.status}
        if task.send_time:
            item["send_time"] = task.send_time
        tasks.append(item)
    return {"task_list": tasks, "next_cursor": next_cursor}


def get_groupmsg_send_result(ctx: WireContext, p: Params) -> Payload:
    message = _require_message(ctx, p)
    userid = require_member(ctx.world, p.text("userid")).userid
    limit = p.integer("limit", 500, minimum=1, maximum=1000) or 500
    rows = [r for r in message.recipients if r.userid == userid]
    page, next_cursor = paginate(rows, p.text("cursor"), limit)
    key = "external_userid" if message.chat_type == "single" else "chat_id"
    results = []
    for row in page:
        item: Payload = {key: row.target, "userid": row.userid, "status": row.status}
        if row.send_time:
            item["send_time"] = row.send_time
        results.append(item)
    return {"send_list": results, "next_cursor": next_cursor}


def remind_groupmsg_send(ctx: WireContext, p: Params) -> Payload:
    message = _require_message(ctx, p)
    if message.cancelled:
        raise ApiError(41093)
    recent = [t for t in message.reminders if t > ctx.now - REMIND_WINDOW]
    if len(recent) >= REMIND_LIMIT:
        raise ApiError(41094, f"at most {REMIND_LIMIT} reminders per message in 24 hours")
    message.reminders = [*recent, ctx.now]
    return {}


def cancel_groupmsg_send(ctx: WireContext, p: Params) -> Payload:
    message = _require_message(ctx, p)
    if message.cancelled:
        raise ApiError(41093)
    message.cancelled = True
    return {}


ENDPOINTS: list[Endpoint] = [
    post("externalcontact/add_msg_template", add_msg_template, mutates=True),
    post("externalcontact/get_groupmsg_list_v2", get_groupmsg_list_v2),
    post("externalcontact/get_groupmsg_task", get_groupmsg_task),
    post("externalcontact/get_groupmsg_send_result", get_groupmsg_send_result),
    post("externalcontact/remind_groupmsg_send", remind_groupmsg_send, mutates=True),
    post("externalcontact/cancel_groupmsg_send", cancel_groupmsg_send, mutates=True),
]
