"""The real backend: wechatpy's WeChatClient pointed at ``WECOM_API_BASE`` (WeCom or our simulator).

This is the only module that imports wechatpy's client or an HTTP library. Every request goes through
``HttpBackend._call``: rate limit → request with a timeout → errcode mapping → one token refresh.
"""

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass

import requests
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException, WeChatOAuthException
from wechatpy.oauth import WeChatOAuth
from wechatpy.session.redisstorage import RedisStorage

from wecom.contracts import (
    ContactPage,
    ContactWay,
    ExternalContact,
    FollowInfo,
    GroupChatDetail,
    GroupChatMember,
    GroupChatPage,
    GroupChatRef,
    MessageContent,
    MessageSendResult,
    StaffMember,
    TagRef,
)
from wecom.errors import (
    TOKEN_CODES,
    WeComError,
    WeComTransientError,
    WeComUnknownOutcome,
    error_for_code,
)
from wecom.ratelimit import TokenBucket

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpConfig:
    corp_id: str
    secret: str
    agent_id: str
    api_base: str
    timeout: float
    api_rate_per_min: int
    app_msg_rate_per_min: int
    key_prefix: str = "scrm"
    rate_wait: float = 30.0
    oa_appid: str = ""  # a WeChat official account, for landing-page OAuth (API.md §8)
    oa_secret: str = ""
    oa_api_base: str = "https://api.weixin.qq.com/"


class WeComClient(WeChatClient):
    """wechatpy's client with the token URL and API base taken from configuration (API.md §9)."""

    def __init__(self, *, corp_id: str, secret: str, api_base: str, session, timeout: float) -> None:
        super().__init__(corp_id, secret, session=session, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = api_base

    @property
    def access_token_key(self) -> str:
        # The stock key embeds 10 characters of the secret; a digest keeps secrets out of Redis keys.
        digest = hashlib.sha256(self.secret.encode()).hexdigest()[:16]
        return f"{self.corp_id}_{digest}_access_token"

    def fetch_access_token(self) -> dict:
        res = self._http.get(
            self.API_BASE_URL + "gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
            timeout=self.timeout,
        )
        res.raise_for_status()
        result = res.json()
        if result.get("errcode", 0) != 0:
            raise WeChatClientException(result["errcode"], result.get("errmsg", ""), client=self)
        # Shared through Redis by every process; refreshed five minutes before WeCom expires it.
        ttl = max(60, int(result.get("expires_in", 7200)) - 300)
        self.session.set(self.access_token_key, result["access_token"], ttl)
        self.expires_at = None
        return result

    def invalidate_token(self) -> None:
        self.session.delete(self.access_token_key)


class OfficialAccountOAuth(WeChatOAuth):
    """wechatpy's official-account OAuth with the API base from configuration and a timeout on every request."""

    def __init__(self, *, app_id: str, secret: str, api_base: str, timeout: float) -> None:
        super().__init__(app_id, secret, redirect_uri="")
        self.API_BASE_URL = api_base
        self.timeout = timeout

    def _request(self, method, url_or_endpoint, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super()._request(method, url_or_endpoint, **kwargs)


def _tags(raw: list[dict]) -> tuple[TagRef, ...]:
    return tuple(
        TagRef(
            tag_id=t.get("tag_id", ""),
            tag_name=t.get("tag_name", ""),
            group_name=t.get("group_name", ""),
            type=int(t.get("type", 1)),
        )
        for t in raw or []
    )


def _follow(raw: dict) -> FollowInfo:
    tags = _tags(raw.get("tags", []))
    if not tags and raw.get("tag_id"):  # batch/get_by_user gives ids only
        tags = tuple(TagRef(tag_id=tid) for tid in raw["tag_id"])
    return FollowInfo(
        userid=raw.get("userid", ""),
        remark=raw.get("remark", ""),
        description=raw.get("description", ""),
        createtime=int(raw.get("createtime", 0) or 0),
        tags=tags,
        remark_corp_name=raw.get("remark_corp_name", ""),
        remark_mobiles=tuple(raw.get("remark_mobiles", []) or []),
        add_way=int(raw.get("add_way", 0) or 0),
        oper_userid=raw.get("oper_userid", ""),
        state=raw.get("state", ""),
    )


def _contact(raw: dict, follows: list[dict]) -> ExternalContact:
    return ExternalContact(
        external_userid=raw["external_userid"],
        name=raw.get("name", ""),
        avatar=raw.get("avatar", ""),
        type=int(raw.get("type", 1) or 1),
        gender=int(raw.get("gender", 0) or 0),
        unionid=raw.get("unionid", ""),
        position=raw.get("position", ""),
        corp_name=raw.get("corp_name", ""),
        corp_full_name=raw.get("corp_full_name", ""),
        follow_users=tuple(_follow(f) for f in follows),
    )


def _content_body(content: MessageContent) -> dict:
    body: dict = {}
    if content.text:
        body["text"] = {"content": content.text}
    if content.attachments:
        body["attachments"] = list(content.attachments)
    return body


class HttpBackend:
    def __init__(self, config: HttpConfig, redis_client) -> None:
        self.config = config
        self.redis = redis_client
        self.client = WeComClient(
            corp_id=config.corp_id,
            secret=config.secret,
            api_base=config.api_base,
            session=RedisStorage(redis_client, prefix=f"{config.key_prefix}:wecom"),
            timeout=config.timeout,
        )

    # --- the one seam ------------------------------------------------------------------------------
    def _bucket(self, key: str, per_minute: int) -> TokenBucket:
        return TokenBucket(self.redis, key=f"{self.config.key_prefix}:wecom:rl:{self.config.corp_id}:{key}",
                           per_minute=per_minute)

    def _call(self, method: str, path: str, *, params: dict | None = None, data: dict | None = None,
              idempotent: bool = True, files=None) -> dict:
        self._bucket(path, self.config.api_rate_per_min).acquire(max_wait=self.config.rate_wait, api=path)
        request_id = uuid.uuid4().hex[:12]
        started = time.monotonic()
        for attempt in (1, 2):
            try:
                kwargs: dict = {"params": dict(params or {})}
                if data is not None:
                    kwargs["data"] = data
                if files is not None:
                    kwargs["files"] = files
                result = self.client._request(method, path, **kwargs)
            except WeChatClientException as exc:
                code = exc.errcode
                if code is None:  # HTTP status error from WeCom's edge
                    raise WeComTransientError(None, "HTTP error from WeCom", api=path) from exc
                if code in TOKEN_CODES and attempt == 1:
                    logger.info("wecom token rejected api=%s errcode=%s request_id=%s; refreshing once",
                                path, code, request_id)
                    self.client.invalidate_token()
                    continue
                logger.warning("wecom error api=%s errcode=%s request_id=%s", path, code, request_id)
                raise error_for_code(int(code), str(exc.errmsg), api=path) from exc
            except (requests.ConnectionError, requests.ConnectTimeout) as exc:
                if isinstance(exc, requests.ReadTimeout):
                    raise self._timeout(path, idempotent) from exc
                raise WeComTransientError(None, f"cannot reach WeCom: {exc.__class__.__name__}", api=path) from exc
            except requests.Timeout as exc:
                raise self._timeout(path, idempotent) from exc
            except requests.RequestException as exc:
                raise WeComTransientError(None, f"request failed: {exc.__class__.__name__}", api=path) from exc
            logger.debug("wecom ok api=%s request_id=%s ms=%.1f", path, request_id,
                         (time.monotonic() - started) * 1000)
            if not isinstance(result, dict):
                raise WeComTransientError(None, "WeCom answered with something that is not JSON", api=path)
            return result
        raise WeComError(None, "token refresh did not help", permanent=True, api=path)

    @staticmethod
    def _timeout(path: str, idempotent: bool) -> WeComError:
        if idempotent:
            return WeComTransientError(None, "timed out", api=path)
        return WeComUnknownOutcome("timed out after the request was sent", api=path)

    # --- members and customers ----------------------------------------------------------------------
    def get_follow_user_list(self) -> list[str]:
        return list(self._call("get", "externalcontact/get_follow_user_list").get("follow_user", []))

    def get_user(self, userid: str) -> StaffMember:
        raw = self._call("get", "user/get", params={"userid": userid})
        return StaffMember(userid=raw.get("userid", userid), name=raw.get("name", ""),
                           status=int(raw.get("status", 1) or 1))

    def get_oauth_user(self, code: str):
        from wecom.gateway import OAuthIdentity

        # A code is single use: never retried. The legacy user/getuserinfo capitalised its keys.
        raw = self._call("get", "auth/getuserinfo", params={"code": code}, idempotent=False)
        return OAuthIdentity(userid=raw.get("userid") or raw.get("UserId") or "",
                             openid=raw.get("openid") or raw.get("OpenId") or "",
                             external_userid=raw.get("external_userid") or "")

    def get_oa_identity(self, code: str):
        from wecom.gateway import OAIdentity

        api = "sns/oauth2/access_token"
        oauth = OfficialAccountOAuth(app_id=self.config.oa_appid, secret=self.config.oa_secret,
                                     api_base=self.config.oa_api_base, timeout=self.config.timeout)
        try:  # a code is single use: never retried
            raw = oauth.fetch_access_token(code)
        except WeChatOAuthException as exc:
            if exc.errcode is None:
                raise WeComTransientError(None, "HTTP error from WeChat", api=api) from exc
            logger.warning("wechat oa oauth error errcode=%s", exc.errcode)
            raise error_for_code(int(exc.errcode), str(exc.errmsg), api=api) from exc
        except requests.Timeout as exc:
            raise WeComUnknownOutcome("timed out after the request was sent", api=api) from exc
        except requests.RequestException as exc:
            raise WeComTransientError(None, f"cannot reach WeChat: {exc.__class__.__name__}", api=api) from exc
        if not isinstance(raw, dict) or not raw.get("openid"):
            raise WeComTransientError(None, "WeChat answered without an openid", api=api)
        return OAIdentity(openid=str(raw["openid"])[:64], unionid=str(raw.get("unionid") or "")[:64])

    def list_external_contact_ids(self, userid: str) -> list[str]:
        try:
            return list(self._call("get", "externalcontact/list", params={"userid": userid})
                        .get("external_userid", []))
        except WeComError as exc:
            if exc.code == 84061:  # a member with no customers
                return []
            raise

    def get_external_contact(self, external_userid: str) -> ExternalContact:
        follows: list[dict] = []
        cursor = ""
        while True:
            params = {"external_userid": external_userid}
            if cursor:
                params["cursor"] = cursor
            raw = self._call("get", "externalcontact/get", params=params)
            follows.extend(raw.get("follow_user", []))
            cursor = raw.get("next_cursor", "")
            if not cursor:
                return _contact(raw["external_contact"], follows)

    def batch_get_external_contacts(self, userids: list[str], cursor: str, limit: int) -> ContactPage:
        raw = self._call("post", "externalcontact/batch/get_by_user",
                         data={"userid_list": userids, "cursor": cursor, "limit": limit})
        contacts = tuple(
            _contact(item["external_contact"], [item.get("follow_info", {})])
            for item in raw.get("external_contact_list", [])
        )
        return ContactPage(contacts=contacts, next_cursor=raw.get("next_cursor", ""))

    def remark_external_contact(self, userid: str, external_userid: str, remark: str, description: str) -> None:
        self._call("post", "externalcontact/remark", idempotent=True, data={
            "userid": userid, "external_userid": external_userid, "remark": remark, "description": description,
        })

    # --- customer groups ------------------------------------------------------------------------------
    def list_group_chats(self, cursor: str, limit: int) -> GroupChatPage:
        body: dict = {"status_filter": 0, "limit": limit}
        if cursor:
            body["cursor"] = cursor
        raw = self._call("post", "externalcontact/groupchat/list", data=body)
        chats = tuple(GroupChatRef(chat_id=c["chat_id"], status=int(c.get("status", 0)))
                      for c in raw.get("group_chat_list", []))
        return GroupChatPage(chats=chats, next_cursor=raw.get("next_cursor", ""))

    def get_group_chat(self, chat_id: str) -> GroupChatDetail:
        raw = self._call("post", "externalcontact/groupchat/get", data={"chat_id": chat_id, "need_name": 1})
        chat = raw["group_chat"]
        members = tuple(
            GroupChatMember(
                userid=m["userid"],
                type=int(m.get("type", 2)),
                join_time=int(m.get("join_time", 0) or 0),
                join_scene=int(m.get("join_scene", 0) or 0),
                unionid=m.get("unionid", ""),
                invitor=(m.get("invitor") or {}).get("userid", ""),
                group_nickname=m.get("group_nickname", ""),
                name=m.get("name", ""),
                state=m.get("state", ""),
            )
            for m in chat.get("member_list", [])
        )
        return GroupChatDetail(
            chat_id=chat["chat_id"],
            name=chat.get("name", ""),
            owner=chat.get("owner", ""),
            create_time=int(chat.get("create_time", 0) or 0),
            notice=chat.get("notice", ""),
            members=members,
            admins=tuple(a["userid"] for a in chat.get("admin_list", [])),
            member_version=chat.get("member_version", ""),
        )

    # --- contact ways and join ways ---------------------------------------------------------------------
    def add_contact_way(self, body: dict) -> ContactWay:
        raw = self._call("post", "externalcontact/add_contact_way", data=body, idempotent=False)
        return ContactWay(config_id=raw["config_id"], qr_code=raw.get("qr_code", ""))

    def update_contact_way(self, body: dict) -> None:
        self._call("post", "externalcontact/update_contact_way", data=body)

    def delete_contact_way(self, config_id: str) -> None:
        self._call("post", "externalcontact/del_contact_way", data={"config_id": config_id})

    def add_join_way(self, body: dict) -> ContactWay:
        raw = self._call("post", "externalcontact/groupchat/add_join_way", data=body, idempotent=False)
        config_id = raw["config_id"]
        detail = self.get_join_way(config_id)
        return ContactWay(config_id=config_id, qr_code=detail.get("qr_code", ""))

    def get_join_way(self, config_id: str) -> dict:
        return self._call("post", "externalcontact/groupchat/get_join_way",
                          data={"config_id": config_id}).get("join_way", {})

    def update_join_way(self, body: dict) -> None:
        self._call("post", "externalcontact/groupchat/update_join_way", data=body)

    def delete_join_way(self, config_id: str) -> None:
        self._call("post", "externalcontact/groupchat/del_join_way", data={"config_id": config_id})

    # --- corp tags ----------------------------------------------------------------------------------------
    def get_corp_tags(self, tag_ids: list[str], group_ids: list[str]) -> list[dict]:
        raw = self._call("post", "externalcontact/get_corp_tag_list",
                         data={"tag_id": tag_ids, "group_id": group_ids})
        return list(raw.get("tag_group", []))

    def add_corp_tag(self, body: dict) -> dict:
        return self._call("post", "externalcontact/add_corp_tag", data=body, idempotent=False).get("tag_group", {})

    def edit_corp_tag(self, tag_id: str, name: str | None, order: int | None) -> None:
        body: dict = {"id": tag_id}
        if name is not None:
            body["name"] = name
        if order is not None:
            body["order"] = order
        self._call("post", "externalcontact/edit_corp_tag", data=body)

    def delete_corp_tags(self, tag_ids: list[str], group_ids: list[str]) -> None:
        self._call("post", "externalcontact/del_corp_tag", data={"tag_id": tag_ids, "group_id": group_ids})

    def mark_tag(self, userid: str, external_userid: str, add: list[str], remove: list[str]) -> None:
        self._call("post", "externalcontact/mark_tag", data={
            "userid": userid, "external_userid": external_userid, "add_tag": add, "remove_tag": remove,
        })

    # --- messages ---------------------------------------------------------------------------------------------
    def send_welcome_message(self, welcome_code: str, content: MessageContent) -> None:
        self._call("post", "externalcontact/send_welcome_msg", idempotent=False,
                   data={"welcome_code": welcome_code, **_content_body(content)})

    def send_app_message(self, userids: list[str], content: MessageContent) -> MessageSendResult:
        for userid in userids:
            self._bucket(f"appmsg:{userid}", self.config.app_msg_rate_per_min).acquire(
                max_wait=self.config.rate_wait, api="message/send")
        raw = self._call("post", "message/send", idempotent=False, data={
            "touser": "|".join(userids),
            "msgtype": "text",
            "agentid": int(self.config.agent_id),
            "text": {"content": content.text},
            "enable_duplicate_check": 0,
        })
        invalid = tuple(u for u in (raw.get("invaliduser") or "").split("|") if u)
        return MessageSendResult(msgid=raw.get("msgid", ""), invalid_users=invalid)

    def add_msg_template(self, body: dict) -> MessageSendResult:
        raw = self._call("post", "externalcontact/add_msg_template", data=body, idempotent=False)
        return MessageSendResult(msgid=raw.get("msgid", ""), fail_list=tuple(raw.get("fail_list", [])))

    def get_groupmsg_task(self, msgid: str, cursor: str) -> dict:
        body = {"msgid": msgid, "limit": 1000}
        if cursor:
            body["cursor"] = cursor
        return self._call("post", "externalcontact/get_groupmsg_task", data=body)

    def get_groupmsg_send_result(self, msgid: str, userid: str, cursor: str) -> dict:
        body = {"msgid": msgid, "userid": userid, "limit": 1000}
        if cursor:
            body["cursor"] = cursor
        return self._call("post", "externalcontact/get_groupmsg_send_result", data=body)

    def remind_groupmsg_send(self, msgid: str) -> None:
        self._call("post", "externalcontact/remind_groupmsg_send", data={"msgid": msgid}, idempotent=False)

    def cancel_groupmsg_send(self, msgid: str) -> None:
        self._call("post", "externalcontact/cancel_groupmsg_send", data={"msgid": msgid})

    def upload_media(self, kind: str, filename: str, content: bytes) -> str:
        raw = self._call("post", "media/upload", params={"type": kind}, files={"media": (filename, content)},
                         idempotent=False)
        return raw["media_id"]
