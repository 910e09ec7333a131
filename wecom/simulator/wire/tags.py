"""Corp tags (企业客户标签, API.md §5): list, add, edit, delete, mark.

An app may only edit or delete tags it created itself; tags made in the admin console (the "client_tag"
control action) answer 301002.
"""

from __future__ import annotations

from .. import ids
from ..errors import ApiError, invalid_param
from ..params import Params
from ..state import CorpTag, CorpTagGroup, World
from .base import Endpoint, Payload, WireContext, post, require_customer, require_member

NAME_LIMIT = 30
ORDER_MAX = 2**32 - 1
APP = "app"


def tag_json(tag: CorpTag) -> Payload:
    return {
        "id": tag.id,
        "name": tag.name,
        "create_time": tag.create_time,
        "order": tag.order,
        "deleted": False,
    }


def group_json(group: CorpTagGroup, tags: list[CorpTag]) -> Payload:
    return {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
        "deleted": False,
        "tag": [tag_json(t) for t in sorted(tags, key=lambda t: (-t.order, t.create_time, t.id))],
    }


def get_corp_tag_list(ctx: WireContext, p: Params) -> Payload:
    tag_ids = set(p.text_list("tag_id"))
    group_ids = set(p.text_list("group_id"))
    groups = sorted(ctx.world.tag_groups.values(), key=lambda g: (-g.order, g.create_time, g.group_id))
    result = []
    for group in groups:
        if group_ids:
            if group.group_id in group_ids:
                result.append(group_json(group, group.tags))
        elif tag_ids:
            matching = [t for t in group.tags if t.id in tag_ids]
            if matching:
                result.append(group_json(group, matching))
        else:
            result.append(group_json(group, group.tags))
    return {"tag_group": result}


def _name(p: Params, field: str) -> str:
    name = p.text(field).strip()
    if not name:
        raise invalid_param(f"{field} must not be empty")
    if len(name) > NAME_LIMIT:
        raise invalid_param(f"{field} exceeds {NAME_LIMIT} characters")
    return name


def _order(p: Params, default: int = 0) -> int:
    return p.integer("order", default, minimum=0, maximum=ORDER_MAX) or 0


def add_corp_tag(ctx: WireContext, p: Params) -> Payload:
    requested: dict[str, int] = {}
    for item in p.obj_list("tag"):
        tag_p = Params(item, invalid_param)
        requested.setdefault(_name(tag_p, "name"), _order(tag_p))
    if not requested:
        raise invalid_param("tag must contain at least one tag")
    group = _target_group(ctx.world, p)
    if group is not None:
        existing = {t.name for t in group.tags} & requested.keys()
        if existing:
            raise ApiError(40071, f"tag name exists: {', '.join(sorted(existing))}")
    if ctx.world.tag_count() + len(requested) > ctx.settings.corp_tag_limit:
        raise ApiError(40126, f"corp tag count would exceed {ctx.settings.corp_tag_limit}")
    if group is None:
        group = CorpTagGroup(
            group_id=ids.tag_id(),
            group_name=_name(p, "group_name"),
            create_time=ctx.now,
            order=_order(p),
            creator=APP,
        )
        ctx.world.tag_groups[group.group_id] = group
    created = [
        CorpTag(id=ids.tag_id(), name=name, create_time=ctx.now, order=order, creator=APP)
        for name, order in requested.items()
    ]
    group.tags.extend(created)
    return {"tag_group": group_json(group, created)}


def _target_group(world: World, p: Params) -> CorpTagGroup | None:
    """The group to add to: by group_id (must exist), else by an existing group_name, else None (new group)."""
    group_id = p.text("group_id")
    if group_id:
        group = world.tag_groups.get(group_id)
        if group is None:
            raise ApiError(40068, f"invalid tag group id: {group_id}")
        return group
    if not p.has("group_name"):
        raise invalid_param("group_id or group_name is required")
    return world.tag_group_by_name(_name(p, "group_name"))


def edit_corp_tag(ctx: WireContext, p: Params) -> Payload:
    target_id = p.text("id")
    if not target_id:
        raise invalid_param("id is required")
    if not p.has("name") and not p.has("order"):
        raise invalid_param("name or order is required")
    world = ctx.world
    if (group := world.tag_groups.get(target_id)) is not None:
        _require_own(group.creator, target_id)
        if p.has("name"):
            name = _name(p, "name")
            clash = world.tag_group_by_name(name)
            if clash is not None and clash is not group:
                raise ApiError(40071, f"tag group name exists: {name}")
            group.group_name = name
        group.order = _order(p, group.order)
        return {}
    found = world.find_tag(target_id)
    if found is None:
        raise ApiError(40068, f"invalid tag id: {target_id}")
    group, tag = found
    _require_own(tag.creator, target_id)
    if p.has("name"):
        name = _name(p, "name")
        if any(t.name == name and t is not tag for t in group.tags):
            raise ApiError(40071, f"tag name exists: {name}")
        tag.name = name
    tag.order = _order(p, tag.order)
    return {}


def del_corp_tag(ctx: WireContext, p: Params) -> Payload:
    tag_ids, group_ids = p.text_list("tag_id"), p.text_list("group_id")
    if not tag_ids and not group_ids:
        raise invalid_param("tag_id and group_id cannot both be empty")
    world = ctx.world
    doomed_tags: set[str] = set()
    for group_id in group_ids:
        group = world.tag_groups.get(group_id)
        if group is None:
            raise ApiError(40068, f"invalid tag group id: {group_id}")
        _require_own(group.creator, group_id)
        for tag in group.tags:
            _require_own(tag.creator, tag.id)
        doomed_tags.update(t.id for t in group.tags)
    for tag_id in tag_ids:
        found = world.find_tag(tag_id)
        if found is None:
            raise ApiError(40068, f"invalid tag id: {tag_id}")
        _require_own(found[1].creator, tag_id)
        doomed_tags.add(tag_id)
    for group_id in group_ids:
        del world.tag_groups[group_id]
    for group in list(world.tag_groups.values()):
        group.tags = [t for t in group.tags if t.id not in doomed_tags]
        if not group.tags:
            del world.tag_groups[group.group_id]
    world.forget_tags(doomed_tags)
    return {}


def _require_own(creator: str, target_id: str) -> None:
    if creator != APP:
        raise ApiError(301002, f"no privilege to modify {target_id}: it was not created by this app")


def mark_tag(ctx: WireContext, p: Params) -> Payload:
    member = require_member(ctx.world, p.text("userid"))
    customer = require_customer(ctx.world, p.text("external_userid"))
    add, remove = p.text_list("add_tag"), p.text_list("remove_tag")
    if not add and not remove:
        raise invalid_param("add_tag and remove_tag cannot both be empty")
    for tag_id in [*add, *remove]:
        if ctx.world.find_tag(tag_id) is None:
            raise ApiError(40068, f"invalid tag id: {tag_id}")
    follow = customer.follows.get(member.userid)
    if follow is None:
        raise ApiError(84061, f"{customer.external_userid} is not a customer of {member.userid}")
    removed = set(remove)
    tags = [t for t in follow.tag_ids if t not in removed]
    tags.extend(t for t in dict.fromkeys(add) if t not in tags)
    if len(tags) > 3000:
        raise invalid_param("a customer can carry at most 3000 tags per member")
    follow.tag_ids = tags
    return {}


ENDPOINTS: list[Endpoint] = [
    post("externalcontact/get_corp_tag_list", get_corp_tag_list),
    post("externalcontact/add_corp_tag", add_corp_tag, mutates=True),
    post("externalcontact/edit_corp_tag", edit_corp_tag, mutates=True),
    post("externalcontact/del_corp_tag", del_corp_tag, mutates=True),
    post("externalcontact/mark_tag", mark_tag, mutates=True),
]
