"""Customers: follow users, customer lists and details, batch reads and remarks (API.md §5)."""

from __future__ import annotations

from ..errors import ApiError, invalid_param
from ..params import Params
from ..state import Customer, FollowRecord, World
from .base import (
    Endpoint,
    Payload,
    WireContext,
    get,
    paginate,
    post,
    require_customer,
    require_media,
    require_member,
)

FOLLOW_PAGE_SIZE = 500


def contact_json(customer: Customer) -> Payload:
    data: Payload = {
        "external_userid": customer.external_userid,
        "name": customer.name,
        "avatar": customer.avatar,
        "type": customer.type,
        "gender": customer.gender,
    }
    if customer.unionid:
        data["unionid"] = customer.unionid
    if customer.type == 2:
        data.update(
            position=customer.position, corp_name=customer.corp_name, corp_full_name=customer.corp_name
        )
    return data


def _follow_head(follow: FollowRecord) -> Payload:
    """Fields that precede the tags in a follow_user / follow_info item."""
    return {
        "userid": follow.userid,
        "remark": follow.remark,
        "description": follow.description,
        "createtime": follow.createtime,
    }


def _follow_tail(follow: FollowRecord) -> Payload:
    """Fields that follow the tags; ``state`` only when the relationship came with one."""
    data: Payload = {
        "remark_corp_name": follow.remark_corp_name,
        "remark_mobiles": list(follow.remark_mobiles),
        "add_way": follow.add_way,
        "oper_userid": follow.oper_userid,
    }
    if follow.state:
        data["state"] = follow.state
    return data


def follow_user_json(world: World, follow: FollowRecord) -> Payload:
    tags = []
    for tag_id in follow.tag_ids:
        found = world.find_tag(tag_id)
        if found:
            group, tag = found
            tags.append({"group_name": group.group_name, "tag_name": tag.name, "type": 1, "tag_id": tag.id})
    return {**_follow_head(follow), "tags": tags, **_follow_tail(follow)}


def follow_info_json(follow: FollowRecord) -> Payload:
    return {**_follow_head(follow), "tag_id": list(follow.tag_ids), **_follow_tail(follow)}


def get_follow_user_list(ctx: WireContext, p: Params) -> Payload:
    users = [m.userid for m in ctx.world.members.values() if m.customer_contact and m.status == 1]
    return {"follow_user": users}


def list_customers(ctx: WireContext, p: Params) -> Payload:
    member = require_member(ctx.world, p.text("userid"))
    customers = ctx.world.customers_of(member.userid)
    if not customers:
        raise ApiError(84061, f"member {member.userid} has no external contact")
    return {"external_userid": [c.external_userid for c in customers]}


def get_customer(ctx: WireContext, p: Params) -> Payload:
    customer = require_customer(ctx.world, p.text("external_userid"), read_only=True)
    follows = sorted(customer.follows.values(), key=lambda f: (f.createtime, f.userid))
    if not follows:
        raise ApiError(84061, f"{customer.external_userid} has no relationship with this corp")
    page, next_cursor = paginate(follows, p.text("cursor"), FOLLOW_PAGE_SIZE)
    return {
        "external_contact": contact_json(customer),
        "follow_user": [follow_user_json(ctx.world, f) for f in page],
        "next_cursor": next_cursor,
    }


def batch_get_by_user(ctx: WireContext, p: Params) -> Payload:
    userids = p.text_list("userid_list")
    if not userids:
        raise ApiError(41009, "userid_list is required")
    if len(userids) > 100:
        raise invalid_param("userid_list has more than 100 userids")
    for userid in userids:
        require_member(ctx.world, userid)
    limit = p.integer("limit", 50, minimum=1, maximum=100) or 50
    pairs = [(userid, c) for userid in dict.fromkeys(userids) for c in ctx.world.customers_of(userid)]
    page, next_cursor = paginate(pairs, p.text("cursor"), limit)
    return {
        "external_contact_list": [
            {"external_contact": contact_json(c), "follow_info": follow_info_json(c.follows[userid])}
            for userid, c in page
        ],
        "next_cursor": next_cursor,
    }


def remark(ctx: WireContext, p: Params) -> Payload:
    member = require_member(ctx.world, p.text("userid"))
    customer = require_customer(ctx.world, p.text("external_userid"))
    follow = customer.follows.get(member.userid)
    if follow is None:
        raise ApiError(84061, f"{customer.external_userid} is not a customer of {member.userid}")
    changes = {
        "remark": p.text("remark", max_len=20),
        "description": p.text("description", max_len=150),
        "remark_corp_name": p.text("remark_company", max_len=20),
    }
    mobiles = p.text_list("remark_mobiles", max_items=5)
    pic = p.text("remark_pic_mediaid")
    if pic:
        require_media(ctx, pic, kind="image")
    for name, value in changes.items():
        source = "remark_company" if name == "remark_corp_name" else name
        if source in p.raw:
            setattr(follow, name, value)
    if "remark_mobiles" in p.raw:
        follow.remark_mobiles = mobiles
    if pic:
        follow.remark_pic_mediaid = pic
    return {}


ENDPOINTS: list[Endpoint] = [
    get("externalcontact/get_follow_user_list", get_follow_user_list),
    get("externalcontact/list", list_customers),
    get("externalcontact/get", get_customer),
    post("externalcontact/batch/get_by_user", batch_get_by_user),
    post("externalcontact/remark", remark, mutates=True),
]
