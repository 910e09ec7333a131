"""Plain frozen dataclasses that cross the gateway boundary. No ORM, no wechatpy types."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StaffMember:
    userid: str
    name: str
    status: int = 1  # 1 active, 2 disabled, 4 not activated, 5 left


@dataclass(frozen=True)
class TagRef:
    tag_id: str
    tag_name: str = ""
    group_name: str = ""
    type: int = 1  # 1 corp tag, 2 personal, 3 rule-group


@dataclass(frozen=True)
class FollowInfo:
    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tags: tuple[TagRef, ...] = ()
    remark_corp_name: str = ""
    remark_mobiles: tuple[str, ...] = ()
    add_way: int = 0
    oper_userid: str = ""
    state: str = ""


@dataclass(frozen=True)
class ExternalContact:
    external_userid: str
    name: str = ""
    avatar: str = ""
    type: int = 1  # 1 WeChat user, 2 WeCom user
    gender: int = 0
    unionid: str = ""
    position: str = ""
    corp_name: str = ""
    corp_full_name: str = ""
    follow_users: tuple[FollowInfo, ...] = ()


@dataclass(frozen=True)
class ContactPage:
    contacts: tuple[ExternalContact, ...]
    next_cursor: str = ""


@dataclass(frozen=True)
class GroupChatRef:
    chat_id: str
    status: int = 0


@dataclass(frozen=True)
class GroupChatPage:
    chats: tuple[GroupChatRef, ...]
    next_cursor: str = ""


@dataclass(frozen=True)
class GroupChatMember:
    userid: str
    type: int  # 1 staff member, 2 external contact
    join_time: int = 0
    join_scene: int = 0  # groupchat/get codes: 1 direct invite, 2 invite link, 3 QR
    unionid: str = ""
    invitor: str = ""
    group_nickname: str = ""
    name: str = ""
    state: str = ""


@dataclass(frozen=True)
class GroupChatDetail:
    chat_id: str
    name: str = ""
    owner: str = ""
    create_time: int = 0
    notice: str = ""
    members: tuple[GroupChatMember, ...] = ()
    admins: tuple[str, ...] = ()
    member_version: str = ""


@dataclass(frozen=True)
class ContactWay:
    config_id: str
    qr_code: str = ""


@dataclass(frozen=True)
class MessageSendResult:
    msgid: str = ""
    invalid_users: tuple[str, ...] = ()
    fail_list: tuple[str, ...] = ()


@dataclass(frozen=True)
class MessageContent:
    """What a welcome message, mass message or app message says."""

    text: str = ""
    attachments: tuple[dict, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CallbackMessage:
    """One decrypted WeCom event, normalised (single ``<Item>`` → tuple)."""

    event: str
    change_type: str = ""
    create_time: int = 0
    to_user: str = ""
    user_id: str = ""
    external_user_id: str = ""
    state: str = ""
    welcome_code: str = ""
    source: str = ""
    fail_reason: str = ""
    chat_id: str = ""
    update_detail: str = ""
    join_scene: int | None = None
    quit_scene: int | None = None
    mem_change_cnt: int | None = None
    mem_change_list: tuple[str, ...] = ()
    last_mem_ver: str = ""
    cur_mem_ver: str = ""
    tag_id: str = ""
    tag_type: str = ""
    strategy_id: str = ""
    msg_type: str = ""
