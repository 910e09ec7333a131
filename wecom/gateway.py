"""The only door to WeCom. Everything outside ``wecom/`` calls these functions and gets plain dataclasses.

``WECOM_BACKEND=http`` talks to ``WECOM_API_BASE`` (WeCom itself or our simulator) through wechatpy;
``WECOM_BACKEND=fake`` is the in-memory double for unit tests.
"""

from dataclasses import dataclass
from functools import cache

from django.conf import settings

from wecom.backends.base import WeComBackend
from wecom.contracts import (
    ContactPage,
    ContactWay,
    ExternalContact,
    GroupChatDetail,
    GroupChatPage,
    MessageContent,
    MessageSendResult,
    StaffMember,
)
from wecom.errors import WeComConfigError
from wecom.signatures import aes_key_from_encoding

CONTACT_WAY_STATE_MAX = 30
MASS_SEND_MAX_CUSTOMERS = 10_000
MASS_SEND_MAX_GROUPS = 2_000
JOIN_WAY_MAX_CHATS = 5


def _require(*names: str) -> None:
    missing = [name for name in names if not getattr(settings, name, "")]
    if missing:
        raise WeComConfigError(f"missing WeCom settings: {', '.join(missing)} (see .env.example)")


@dataclass(frozen=True)
class CallbackCrypto:
    corp_id: str
    token: str
    key: bytes


@cache
def callback_crypto() -> CallbackCrypto:
    _require("WECOM_CORP_ID", "WECOM_TOKEN", "WECOM_AES_KEY")
    try:
        key = aes_key_from_encoding(settings.WECOM_AES_KEY)
    except ValueError as exc:
        raise WeComConfigError(f"WECOM_AES_KEY: {exc}") from exc
    return CallbackCrypto(corp_id=settings.WECOM_CORP_ID, token=settings.WECOM_TOKEN, key=key)


@cache
def get_backend() -> WeComBackend:
    if settings.WECOM_BACKEND == "fake":
        from wecom.backends.fake import FakeBackend

        return FakeBackend()
    _require("WECOM_CORP_ID", "WECOM_SECRET", "WECOM_AGENT_ID", "WECOM_API_BASE")
    from scrm.redis import get_redis
    from wecom.backends.http import HttpBackend, HttpConfig

    return HttpBackend(
        HttpConfig(
            corp_id=settings.WECOM_CORP_ID,
            secret=settings.WECOM_SECRET,
            agent_id=settings.WECOM_AGENT_ID,
            api_base=settings.WECOM_API_BASE,
            timeout=settings.WECOM_TIMEOUT,
            api_rate_per_min=settings.WECOM_API_RATE_PER_MIN,
            app_msg_rate_per_min=settings.WECOM_APP_MSG_RATE_PER_MIN,
            key_prefix=settings.REDIS_KEY_PREFIX,
            rate_wait=settings.WECOM_RATE_MAX_WAIT,
            oa_appid=settings.LIVECODE_OA_APPID,
            oa_secret=settings.LIVECODE_OA_SECRET,
            oa_api_base=settings.WECHAT_OA_API_BASE,
        ),
        get_redis(),
    )


def reset() -> None:
    """Forget cached backends and credentials (tests that change settings call this)."""
    get_backend.cache_clear()
    callback_crypto.cache_clear()


# --- members and customers -----------------------------------------------------------------------------
def follow_users_list() -> list[str]:
    return get_backend().get_follow_user_list()


def staff_get(*, userid: str) -> StaffMember:
    return get_backend().get_user(userid)


def external_contact_ids_list(*, userid: str) -> list[str]:
    return get_backend().list_external_contact_ids(userid)


def external_contact_get(*, external_userid: str) -> ExternalContact:
    return get_backend().get_external_contact(external_userid)


def external_contacts_batch_get(*, userids: list[str], cursor: str = "", limit: int = 100) -> ContactPage:
    if not 1 <= len(userids) <= 100:
        raise ValueError("batch/get_by_user takes 1 to 100 userids")
    return get_backend().batch_get_external_contacts(userids, cursor, min(limit, 100))


def external_contact_remark(*, userid: str, external_userid: str, remark: str = "", description: str = "") -> None:
    if len(remark) > 20 or len(description) > 150:
        raise ValueError("remark is at most 20 characters and description at most 150")
    get_backend().remark_external_contact(userid, external_userid, remark, description)


# --- who opened a page (WeCom OAuth, API.md §8) -----------------------------------------------------------
@dataclass(frozen=True)
class OAuthIdentity:
    """What ``auth/getuserinfo`` says about the person behind an OAuth ``code``: a member's ``userid``, or a
    non-member's ``openid`` (per corp) plus ``external_userid`` only when they are already a customer."""

    userid: str = ""
    openid: str = ""
    external_userid: str = ""


def oauth_user_get(*, code: str) -> OAuthIdentity:
    """Resolve a WeCom OAuth ``code`` (single use, valid 5 minutes; exempt from frequency limits)."""
    if not code or len(code) > 512:
        raise ValueError("an OAuth code is 1 to 512 characters")
    return get_backend().get_oauth_user(code)


@dataclass(frozen=True)
class OAIdentity:
    """What a WeChat official account's ``sns/oauth2/access_token`` says about the person behind a ``code``: the
    ``openid`` (stable per account and person) and, only sometimes with ``snsapi_base``, the ``unionid``."""

    openid: str
    unionid: str = ""


def oa_identity_get(*, code: str) -> OAIdentity:
    """Resolve an official-account OAuth ``code`` (single use, valid 5 minutes; never retried)."""
    if not code or len(code) > 512:
        raise ValueError("an OAuth code is 1 to 512 characters")
    if not (settings.LIVECODE_OA_APPID and settings.LIVECODE_OA_SECRET):
        raise ValueError("no official account is configured (LIVECODE_OA_APPID, LIVECODE_OA_SECRET)")
    return get_backend().get_oa_identity(code)


# --- customer groups --------------------------------------------------------------------------------------
def group_chats_list(*, cursor: str = "", limit: int = 1000) -> GroupChatPage:
    return get_backend().list_group_chats(cursor, max(1, min(limit, 1000)))


def group_chat_get(*, chat_id: str) -> GroupChatDetail:
    return get_backend().get_group_chat(chat_id)


# --- contact ways (staff live codes) and join ways (group live codes) -----------------------------------------
def contact_way_create(*, userids: list[str], state: str, remark: str = "", skip_verify: bool = True) -> ContactWay:
    if len(state) > CONTACT_WAY_STATE_MAX:
        raise ValueError(f"state is at most {CONTACT_WAY_STATE_MAX} characters")
    if not userids:
        raise ValueError("a contact way needs at least one staff member")
    body = {
        "type": 1 if len(userids) == 1 else 2,
        "scene": 2,
        "remark": remark[:30],
        "skip_verify": skip_verify,
        "state": state,
        "user": userids,
    }
    return get_backend().add_contact_way(body)


def contact_way_update(*, config_id: str, userids: list[str], state: str, remark: str = "",
                       skip_verify: bool = True) -> None:
    # skip_verify is always sent explicitly: wechatpy's helper would silently re-enable it (API.md §9.2).
    if len(state) > CONTACT_WAY_STATE_MAX:
        raise ValueError(f"state is at most {CONTACT_WAY_STATE_MAX} characters")
    get_backend().update_contact_way({"config_id": config_id, "user": userids, "state": state,
                                      "remark": remark[:30], "skip_verify": skip_verify})


def contact_way_delete(*, config_id: str) -> None:
    get_backend().delete_contact_way(config_id)


def join_way_create(*, chat_ids: list[str], state: str, remark: str = "", auto_create_room: bool = False,
                    room_base_name: str = "", room_base_id: int = 1) -> ContactWay:
    if not 1 <= len(chat_ids) <= JOIN_WAY_MAX_CHATS:
        raise ValueError(f"a join way holds 1 to {JOIN_WAY_MAX_CHATS} groups")
    if len(state) > CONTACT_WAY_STATE_MAX:
        raise ValueError(f"state is at most {CONTACT_WAY_STATE_MAX} characters")
    body = {"scene": 2, "remark": remark[:30], "auto_create_room": int(auto_create_room),
            "chat_id_list": chat_ids, "state": state}
    if auto_create_room:
        body.update(room_base_name=room_base_name[:40], room_base_id=room_base_id)
    return get_backend().add_join_way(body)


def join_way_get(*, config_id: str) -> dict:
    """The join way as WeCom holds it (``qr_code``, ``chat_id_list``, ``state``…)."""
    return get_backend().get_join_way(config_id)


def join_way_update(*, config_id: str, chat_ids: list[str], state: str, remark: str = "",
                    auto_create_room: bool = False) -> None:
    if not 1 <= len(chat_ids) <= JOIN_WAY_MAX_CHATS:
        raise ValueError(f"a join way holds 1 to {JOIN_WAY_MAX_CHATS} groups")
    get_backend().update_join_way({"config_id": config_id, "scene": 2, "remark": remark[:30],
                                   "auto_create_room": int(auto_create_room), "chat_id_list": chat_ids,
                                   "state": state})


def join_way_delete(*, config_id: str) -> None:
    get_backend().delete_join_way(config_id)


# --- corp tags -----------------------------------------------------------------------------------------------------
def corp_tags_list(*, tag_ids: list[str] | None = None, group_ids: list[str] | None = None) -> list[dict]:
    return get_backend().get_corp_tags(tag_ids or [], group_ids or [])


def corp_tag_create(*, group_name: str = "", group_id: str = "", names: list[str]) -> dict:
    if any(len(n) > 30 or not n.strip() for n in names):
        raise ValueError("tag names are 1 to 30 characters")
    body: dict = {"tag": [{"name": n} for n in names]}
    if group_id:
        body["group_id"] = group_id
    else:
        body["group_name"] = group_name
    return get_backend().add_corp_tag(body)


def corp_tag_edit(*, tag_id: str, name: str | None = None, order: int | None = None) -> None:
    get_backend().edit_corp_tag(tag_id, name, order)


def corp_tags_delete(*, tag_ids: list[str] | None = None, group_ids: list[str] | None = None) -> None:
    get_backend().delete_corp_tags(tag_ids or [], group_ids or [])


def contact_tags_mark(*, userid: str, external_userid: str, add: list[str] | None = None,
                      remove: list[str] | None = None) -> None:
    if not add and not remove:
        raise ValueError("mark_tag needs tags to add or remove")
    get_backend().mark_tag(userid, external_userid, add or [], remove or [])


# --- messages --------------------------------------------------------------------------------------------------------
def welcome_message_send(*, welcome_code: str, content: MessageContent) -> None:
    if not welcome_code:
        raise ValueError("a welcome message needs the WelcomeCode of the add event")
    get_backend().send_welcome_message(welcome_code, content)


def app_message_send(*, userids: list[str], content: MessageContent) -> MessageSendResult:
    if not userids:
        raise ValueError("an app message needs at least one staff member")
    return get_backend().send_app_message(userids, content)


def mass_message_create(*, sender: str, content: MessageContent, external_userids: list[str] | None = None,
                        chat_ids: list[str] | None = None) -> MessageSendResult:
    body: dict = {"sender": sender, "allow_select": False}
    if chat_ids:
        if len(chat_ids) > MASS_SEND_MAX_GROUPS:
            raise ValueError(f"a group mass message reaches at most {MASS_SEND_MAX_GROUPS} groups")
        body.update(chat_type="group", chat_id_list=chat_ids)
    else:
        if len(external_userids or []) > MASS_SEND_MAX_CUSTOMERS:
            raise ValueError(f"a mass message reaches at most {MASS_SEND_MAX_CUSTOMERS} customers")
        body.update(chat_type="single", external_userid=list(external_userids or []))
    if content.text:
        body["text"] = {"content": content.text}
    if content.attachments:
        body["attachments"] = list(content.attachments)
    return get_backend().add_msg_template(body)


def mass_message_tasks_get(*, msgid: str, cursor: str = "") -> dict:
    return get_backend().get_groupmsg_task(msgid, cursor)


def mass_message_results_get(*, msgid: str, userid: str, cursor: str = "") -> dict:
    return get_backend().get_groupmsg_send_result(msgid, userid, cursor)


def mass_message_remind(*, msgid: str) -> None:
    get_backend().remind_groupmsg_send(msgid)


def mass_message_cancel(*, msgid: str) -> None:
    get_backend().cancel_groupmsg_send(msgid)


def media_upload(*, kind: str, filename: str, content: bytes) -> str:
    if kind not in {"image", "voice", "video", "file"}:
        raise ValueError("media kind is image, voice, video or file")
    return get_backend().upload_media(kind, filename, content)
