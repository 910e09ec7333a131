"""The simulated corp: members, customers, tags, contact/join ways, groups, messages and media.

Plain dataclasses (with ``__slots__``: a world may hold a million customers), serialisable to JSON
(``World.to_dict`` / ``World.from_dict``). Customers live in a ``CustomerTable``, which keeps bulk-seeded
customers as compact rows until something needs them as objects. The world has no lock of its own: the
``Simulator`` holds one lock around every request that reads or mutates it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from . import ids

# Recent history lists are capped so the state file stays small in long-running demos.
HISTORY_LIMIT = 5000


@dataclass(slots=True)
class Member:
    """A staff member (成员). ``status``: 1 active, 2 disabled, 4 not activated, 5 resigned."""

    userid: str
    name: str
    mobile: str = ""
    status: int = 1
    customer_contact: bool = True


@dataclass(slots=True)
class FollowRecord:
    """One member's relationship with a customer (``follow_user`` item)."""

    userid: str
    createtime: int
    remark: str = ""
    description: str = ""
    tag_ids: list[str] = field(default_factory=list)
    state: str = ""
    add_way: int = 1
    oper_userid: str = ""
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    remark_pic_mediaid: str = ""


@dataclass(slots=True)
class Customer:
    """An external contact. ``type`` 1 = WeChat user, 2 = WeCom user; ``gender`` 0 unknown, 1 male, 2 female."""

    external_userid: str
    name: str
    type: int = 1
    gender: int = 0
    unionid: str = ""
    avatar: str = ""
    position: str = ""
    corp_name: str = ""
    follows: dict[str, FollowRecord] = field(default_factory=dict)


@dataclass(slots=True)
class CorpTag:
    id: str
    name: str
    create_time: int
    order: int = 0
    creator: str = "app"


@dataclass(slots=True)
class CorpTagGroup:
    """``creator`` is "app" for tags made through the API, "console" for tags made in the admin console."""

    group_id: str
    group_name: str
    create_time: int
    order: int = 0
    creator: str = "app"
    tags: list[CorpTag] = field(default_factory=list)


@dataclass(slots=True)
class ContactWay:
    """A 「联系我」 configuration. Temporary ones (``is_temp``) do not count toward the shared quota."""

    config_id: str
    type: int
    scene: int
    created_at: int
    style: int = 1
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    users: list[str] = field(default_factory=list)
    parties: list[int] = field(default_factory=list)
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""
    is_exclusive: bool = False
    conclusions: dict[str, Any] = field(default_factory=dict)
    next_user_index: int = 0
    used: bool = False


@dataclass(slots=True)
class JoinWay:
    """A customer-group 「加入群聊」 configuration (≤ 5 chats)."""

    config_id: str
    scene: int
    created_at: int
    chat_id_list: list[str] = field(default_factory=list)
    remark: str = ""
    auto_create_room: bool = True
    room_base_name: str = ""
    room_base_id: int = 0
    state: str = ""


@dataclass(slots=True)
class GroupMember:
    """``type`` 1 member, 2 external; ``join_scene`` (groupchat/get codes) 1 invited, 2 invite link, 3 QR."""

    userid: str
    type: int
    join_time: int
    join_scene: int
    invitor: str = ""
    group_nickname: str = ""
    name: str = ""
    unionid: str = ""
    state: str = ""


@dataclass(slots=True)
class GroupChat:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    status: int = 0
    admin_list: list[str] = field(default_factory=list)
    members: list[GroupMember] = field(default_factory=list)
    revision: int = 0

    @property
    def member_version(self) -> str:
        return ids.member_version(self.chat_id, self.revision)

    def member(self, userid: str) -> GroupMember | None:
        return next((m for m in self.members if m.userid == userid), None)

    def qr_join_count(self) -> int:
        return sum(1 for m in self.members if m.join_scene == 3)


@dataclass(slots=True)
class MassTask:
    """Per-sender task: status 0 not sent, 2 sent (get_groupmsg_task)."""

    userid: str
    status: int = 0
    send_time: int = 0


@dataclass(slots=True)
class MassRecipient:
    """Per-recipient result: 0 not sent, 1 sent, 2 not a friend / gone, 3 over the receive quota."""

    userid: str
    target: str
    status: int = 0
    send_time: int = 0


@dataclass(slots=True)
class MassMessage:
    msgid: str
    chat_type: str
    create_time: int
    create_type: int = 0
    creator: str = ""
    text: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    allow_select: bool = False
    cancelled: bool = False
    reminders: list[int] = field(default_factory=list)
    tasks: list[MassTask] = field(default_factory=list)
    recipients: list[MassRecipient] = field(default_factory=list)

    def task(self, userid: str) -> MassTask | None:
        return next((t for t in self.tasks if t.userid == userid), None)


@dataclass(slots=True)
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used_at: float | None = None


@dataclass(slots=True)
class WelcomeMessage:
    welcome_code: str
    userid: str
    external_userid: str
    sent_at: int
    text: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class AppMessage:
    """An application message (message/send) and what happened to each addressed member."""

    msgid: str
    agentid: int
    msgtype: str
    sent_at: int
    body: dict[str, Any] = field(default_factory=dict)
    delivered: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    invaliduser: list[str] = field(default_factory=list)
    invalidparty: list[str] = field(default_factory=list)
    invalidtag: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Media:
    """Uploaded media metadata; the bytes live in memory only (not in the state file)."""

    media_id: str
    type: str
    filename: str
    content_type: str
    size: int
    created_at: int
    permanent: bool = False


class CustomerTable(MutableMapping[str, Customer]):
    """``World.customers``: external_userid → ``Customer``, in insertion order.

    A customer added with ``add_plain`` (one follower and every other field at its default, as a bulk seed
    makes them) is stored as a row: its id and name in lists, its follower (an index into the distinct
    userids) and the relationship's createtime in arrays — about a quarter of the memory of the objects.
    The row becomes a ``Customer`` object, kept in its place, the first time anything asks for one through
    the mapping (``[]``, ``get``, ``values``, ``items``, ``pop``), so changes made through that object stick.
    The read-only helpers (``peek``, ``of_member``, ``follower_counts``, ``objects``, ``to_dict``) answer from
    the rows without keeping anything.
    """

    def __init__(self, customers: Mapping[str, Customer] | None = None) -> None:
        # external_userid -> Customer, or the int index of a compact row
        self._entries: dict[str, Customer | int] = dict(customers or {})
        self._ids: list[str] = []
        self._names: list[str] = []
        self._followers = array("I")
        self._createtimes = array("q")
        self._userids: list[str] = []
        self._userid_index: dict[str, int] = {}

    # --- compact rows ---------------------------------------------------------------------------------------

    def add_plain(self, external_userid: str, name: str, userid: str, createtime: int) -> None:
        """Add (or replace) a customer with one follower, ``userid``, and nothing else but defaults."""
        index = self._userid_index.get(userid)
        if index is None:
            index = self._userid_index[userid] = len(self._userids)
            self._userids.append(userid)
        self._entries[external_userid] = len(self._ids)
        self._ids.append(external_userid)
        self._names.append(name)
        self._followers.append(index)
        self._createtimes.append(createtime)

    def _build(self, row: int) -> Customer:
        userid = self._userids[self._followers[row]]
        follow = FollowRecord(userid=userid, createtime=self._createtimes[row])
        return Customer(external_userid=self._ids[row], name=self._names[row], follows={userid: follow})

    # --- mapping (objects) ----------------------------------------------------------------------------------

    def __getitem__(self, external_userid: str) -> Customer:
        entry = self._entries[external_userid]
        if isinstance(entry, Customer):
            return entry
        customer = self._entries[external_userid] = self._build(entry)  # same key: order and iterators hold
        return customer

    def __setitem__(self, external_userid: str, customer: Customer) -> None:
        self._entries[external_userid] = customer

    def __delitem__(self, external_userid: str) -> None:
        del self._entries[external_userid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, external_userid: object) -> bool:
        return external_userid in self._entries

    def __repr__(self) -> str:
        return f"<CustomerTable: {len(self._entries)} customers>"

    # --- read only ------------------------------------------------------------------------------------------

    def peek(self, external_userid: str) -> Customer | None:
        """The customer, to read: a row answers with a new object that is not kept (never change it)."""
        entry = self._entries.get(external_userid)
        return self._build(entry) if isinstance(entry, int) else entry

    def objects(self) -> Iterator[Customer]:
        """The customers that exist as objects (rows have no tags, remarks or other editable data)."""
        return (entry for entry in self._entries.values() if isinstance(entry, Customer))

    def of_member(self, userid: str) -> list[Customer]:
        """The member's customers, to read (rows come back as objects that are not kept), in table order."""
        index = self._userid_index.get(userid)
        found = []
        for entry in self._entries.values():
            if isinstance(entry, Customer):
                if userid in entry.follows:
                    found.append(entry)
            elif self._followers[entry] == index:
                found.append(self._build(entry))
        return found

    def follower_counts(self) -> Counter[str]:
        """Customers per member, in one pass."""
        counts: Counter[str] = Counter()
        rows: Counter[int] = Counter()
        for entry in self._entries.values():
            if isinstance(entry, Customer):
                counts.update(entry.follows.keys())
            else:
                rows[self._followers[entry]] += 1
        for index, count in rows.items():
            counts[self._userids[index]] += count
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            key: dataclasses.asdict(self._build(entry) if isinstance(entry, int) else entry)
            for key, entry in self._entries.items()
        }


@dataclass
class World:
    members: dict[str, Member] = field(default_factory=dict)
    customers: CustomerTable = field(default_factory=CustomerTable)
    tag_groups: dict[str, CorpTagGroup] = field(default_factory=dict)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    join_ways: dict[str, JoinWay] = field(default_factory=dict)
    groups: dict[str, GroupChat] = field(default_factory=dict)
    mass_messages: dict[str, MassMessage] = field(default_factory=dict)
    mass_receipts: dict[str, list[int]] = field(default_factory=dict)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    welcome_messages: list[WelcomeMessage] = field(default_factory=list)
    app_messages: list[AppMessage] = field(default_factory=list)
    app_message_deliveries: dict[str, list[float]] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)

    # --- serialisation ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, customers=CustomerTable()))
        data["customers"] = self.customers.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> World:
        world = from_jsonable(cls, {key: value for key, value in data.items() if key != "customers"})
        saved = data.get("customers") or {}
        world.customers = CustomerTable({key: from_jsonable(Customer, item) for key, item in saved.items()})
        return world

    def is_empty(self) -> bool:
        return not (self.members or self.customers or self.groups or self.tag_groups)

    # --- lookups ------------------------------------------------------------------------------------------

    def follow(self, userid: str, external_userid: str) -> FollowRecord | None:
        """The relationship, to read (see ``CustomerTable.peek``)."""
        customer = self.customers.peek(external_userid)
        return customer.follows.get(userid) if customer else None

    def customers_of(self, userid: str) -> list[Customer]:
        """The member's customers, oldest relationship first, to read (see ``CustomerTable.of_member``)."""
        followed = self.customers.of_member(userid)
        return sorted(followed, key=lambda c: (c.follows[userid].createtime, c.external_userid))

    def find_tag(self, tag_id: str) -> tuple[CorpTagGroup, CorpTag] | None:
        for group in self.tag_groups.values():
            for tag in group.tags:
                if tag.id == tag_id:
                    return group, tag
        return None

    def tag_group_by_name(self, name: str) -> CorpTagGroup | None:
        return next((g for g in self.tag_groups.values() if g.group_name == name), None)

    def tag_count(self) -> int:
        return sum(len(group.tags) for group in self.tag_groups.values())

    def quota_used(self) -> int:
        """Configs counted against the shared contact-way / join-way quota (temporary ones excluded)."""
        return sum(1 for way in self.contact_ways.values() if not way.is_temp) + len(self.join_ways)

    def forget_tags(self, tag_ids: set[str]) -> None:
        """Drop deleted tags from every follow record (compact rows have none)."""
        for customer in self.customers.objects():
            for follow in customer.follows.values():
                follow.tag_ids = [t for t in follow.tag_ids if t not in tag_ids]

    def display_name(self, member_or_customer_id: str) -> str:
        if member := self.members.get(member_or_customer_id):
            return member.name
        if customer := self.customers.peek(member_or_customer_id):
            return customer.name
        return ""


def trim_history(items: list[Any]) -> None:
    if len(items) > HISTORY_LIMIT:
        del items[: len(items) - HISTORY_LIMIT]


# --- generic dataclass <- JSON conversion -------------------------------------------------------------------


def from_jsonable[T](cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (nested) dataclass from ``dataclasses.asdict`` output; unknown keys are ignored."""
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _convert(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and f.name in data
    }
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_jsonable(hint, value)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        return [_convert(item_hint, item) for item in value]
    if origin is dict:
        _, value_hint = typing.get_args(hint)
        return {key: _convert(value_hint, item) for key, item in value.items()}
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _convert(options[0], value)
    return value
