"""An in-memory backend for unit tests (like Django's locmem email backend).

Tests put contracts into its dictionaries, read what was sent from ``calls``/``welcome_messages``/
``app_messages``, and script failures with ``fail_next(method, error)``.
"""

import itertools
from collections import defaultdict

from wecom.contracts import (
    ContactPage,
    ContactWay,
    ExternalContact,
    GroupChatDetail,
    GroupChatPage,
    GroupChatRef,
    MessageContent,
    MessageSendResult,
    StaffMember,
)
from wecom.errors import WeComError


class FakeBackend:
    def __init__(self) -> None:
        self.staff: dict[str, StaffMember] = {}
        self.contacts: dict[str, ExternalContact] = {}
        self.chats: dict[str, GroupChatDetail] = {}
        self.contact_ways: dict[str, dict] = {}
        self.join_ways: dict[str, dict] = {}
        self.corp_tags: list[dict] = []
        self.marks: list[tuple[str, str, list[str], list[str]]] = []
        self.welcome_messages: list[tuple[str, MessageContent]] = []
        self.app_messages: list[tuple[list[str], MessageContent]] = []
        self.msg_templates: dict[str, dict] = {}
        # Scripted read-backs of mass messages: msgid → task_list, (msgid, userid) → send_list.
        self.groupmsg_tasks: dict[str, list[dict]] = {}
        self.groupmsg_results: dict[tuple[str, str], list[dict]] = {}
        self.media: dict[str, bytes] = {}
        self.oauth_codes: dict[str, object] = {}  # OAuth code → gateway.OAuthIdentity (each used once)
        self.oa_codes: dict[str, object] = {}  # official-account OAuth code → gateway.OAIdentity (each used once)
        self.calls: list[tuple[str, tuple]] = []
        self._failures: dict[str, list[Exception]] = defaultdict(list)
        self._ids = itertools.count(1)

    # --- scripting -----------------------------------------------------------------------------------
    def fail_next(self, method: str, error: Exception, times: int = 1) -> None:
        self._failures[method].extend([error] * times)

    def _record(self, method: str, *args) -> None:
        self.calls.append((method, args))
        if self._failures.get(method):
            raise self._failures[method].pop(0)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):030d}"

    # --- members and customers ---------------------------------------------------------------------------
    def get_follow_user_list(self) -> list[str]:
        self._record("get_follow_user_list")
        return sorted({f.userid for c in self.contacts.values() for f in c.follow_users} | set(self.staff))

    def get_user(self, userid: str) -> StaffMember:
        self._record("get_user", userid)
        if userid not in self.staff:
            raise WeComError(60111, "userid not found", permanent=True, api="user/get")
        return self.staff[userid]

    def get_oauth_user(self, code: str):
        self._record("get_oauth_user", code)
        if code not in self.oauth_codes:
            raise WeComError(40029, "invalid code", permanent=True, api="auth/getuserinfo")
        return self.oauth_codes.pop(code)

    def get_oa_identity(self, code: str):
        self._record("get_oa_identity", code)
        if code not in self.oa_codes:
            raise WeComError(40029, "invalid code", permanent=True, api="sns/oauth2/access_token")
        return self.oa_codes.pop(code)

    def list_external_contact_ids(self, userid: str) -> list[str]:
        self._record("list_external_contact_ids", userid)
        return sorted(c.external_userid for c in self.contacts.values()
                      if any(f.userid == userid for f in c.follow_users))

    def get_external_contact(self, external_userid: str) -> ExternalContact:
        self._record("get_external_contact", external_userid)
        if external_userid not in self.contacts:
            raise WeComError(40096, "invalid external userid", permanent=True, api="externalcontact/get")
        return self.contacts[external_userid]

    def batch_get_external_contacts(self, userids: list[str], cursor: str, limit: int) -> ContactPage:
        self._record("batch_get_external_contacts", tuple(userids), cursor, limit)
        rows = [
            ExternalContact(**{**c.__dict__, "follow_users": (f,)})
            for c in sorted(self.contacts.values(), key=lambda c: c.external_userid)
            for f in c.follow_users
            if f.userid in userids
        ]
        start = int(cursor or 0)
        page = rows[start : start + limit]
        nxt = str(start + limit) if start + limit < len(rows) else ""
        return ContactPage(contacts=tuple(page), next_cursor=nxt)

    def remark_external_contact(self, userid: str, external_userid: str, remark: str, description: str) -> None:
        self._record("remark_external_contact", userid, external_userid, remark, description)

    # --- groups ------------------------------------------------------------------------------------------------
    def list_group_chats(self, cursor: str, limit: int) -> GroupChatPage:
        self._record("list_group_chats", cursor, limit)
        ids = sorted(self.chats)
        start = int(cursor or 0)
        nxt = str(start + limit) if start + limit < len(ids) else ""
        return GroupChatPage(chats=tuple(GroupChatRef(chat_id=i) for i in ids[start : start + limit]),
                             next_cursor=nxt)

    def get_group_chat(self, chat_id: str) -> GroupChatDetail:
        self._record("get_group_chat", chat_id)
        if chat_id not in self.chats:
            raise WeComError(40050, "invalid chat id", permanent=True, api="externalcontact/groupchat/get")
        return self.chats[chat_id]

    # --- ways ------------------------------------------------------------------------------------------------------
    def add_contact_way(self, body: dict) -> ContactWay:
        self._record("add_contact_way", body)
        config_id = self._new_id("cw")
        self.contact_ways[config_id] = dict(body)
        return ContactWay(config_id=config_id, qr_code=f"https://fake.invalid/qr/{config_id}")

    def update_contact_way(self, body: dict) -> None:
        self._record("update_contact_way", body)
        self.contact_ways[body["config_id"]] = dict(body)

    def delete_contact_way(self, config_id: str) -> None:
        self._record("delete_contact_way", config_id)
        self.contact_ways.pop(config_id, None)

    def add_join_way(self, body: dict) -> ContactWay:
        self._record("add_join_way", body)
        config_id = self._new_id("jw")
        self.join_ways[config_id] = dict(body)
        return ContactWay(config_id=config_id, qr_code=f"https://fake.invalid/join/{config_id}")

    def get_join_way(self, config_id: str) -> dict:
        self._record("get_join_way", config_id)
        return {"config_id": config_id, **self.join_ways.get(config_id, {})}

    def update_join_way(self, body: dict) -> None:
        self._record("update_join_way", body)
        self.join_ways[body["config_id"]] = dict(body)

    def delete_join_way(self, config_id: str) -> None:
        self._record("delete_join_way", config_id)
        self.join_ways.pop(config_id, None)

    # --- tags ----------------------------------------------------------------------------------------------------------
    def get_corp_tags(self, tag_ids: list[str], group_ids: list[str]) -> list[dict]:
        self._record("get_corp_tags", tuple(tag_ids), tuple(group_ids))
        if group_ids:
            return [dict(g) for g in self.corp_tags if g["group_id"] in group_ids]
        if tag_ids:
            picked = []
            for group in self.corp_tags:
                tags = [t for t in group["tag"] if t["id"] in tag_ids]
                if tags:
                    picked.append({**group, "tag": tags})
            return picked
        return [dict(g) for g in self.corp_tags]

    def add_corp_tag(self, body: dict) -> dict:
        self._record("add_corp_tag", body)
        group = next((g for g in self.corp_tags if body.get("group_id") and g["group_id"] == body["group_id"]
                      or not body.get("group_id") and g["group_name"] == body.get("group_name")), None)
        if group is None:
            if body.get("group_id"):
                raise WeComError(40068, "invalid tag group", permanent=True, api="add_corp_tag")
            group = {"group_id": self._new_id("et"), "group_name": body.get("group_name", ""), "order": 0, "tag": []}
            self.corp_tags.append(group)
        new = [{"id": self._new_id("et"), "name": t["name"], "order": t.get("order", 0)} for t in body.get("tag", [])
               if t["name"] not in {x["name"] for x in group["tag"]}]
        group["tag"].extend(new)
        return {**group, "tag": new}

    def edit_corp_tag(self, tag_id: str, name: str | None, order: int | None) -> None:
        self._record("edit_corp_tag", tag_id, name, order)
        for group in self.corp_tags:
            for tag in group["tag"]:
                if tag["id"] == tag_id:
                    tag.update({k: v for k, v in (("name", name), ("order", order)) if v is not None})
                    return
            if group["group_id"] == tag_id:
                group.update({k: v for k, v in (("group_name", name), ("order", order)) if v is not None})
                return
        raise WeComError(40068, "invalid tag", permanent=True, api="edit_corp_tag")

    def delete_corp_tags(self, tag_ids: list[str], group_ids: list[str]) -> None:
        self._record("delete_corp_tags", tuple(tag_ids), tuple(group_ids))
        for group in self.corp_tags:
            group["tag"] = [t for t in group["tag"] if t["id"] not in tag_ids]
        self.corp_tags = [g for g in self.corp_tags if g["tag"] and g["group_id"] not in group_ids]

    def mark_tag(self, userid: str, external_userid: str, add: list[str], remove: list[str]) -> None:
        self._record("mark_tag", userid, external_userid, tuple(add), tuple(remove))
        self.marks.append((userid, external_userid, list(add), list(remove)))

    # --- messages -------------------------------------------------------------------------------------------------------
    def send_welcome_message(self, welcome_code: str, content: MessageContent) -> None:
        self._record("send_welcome_message", welcome_code, content)
        self.welcome_messages.append((welcome_code, content))

    def send_app_message(self, userids: list[str], content: MessageContent) -> MessageSendResult:
        self._record("send_app_message", tuple(userids), content)
        self.app_messages.append((list(userids), content))
        return MessageSendResult(msgid=self._new_id("am"))

    def add_msg_template(self, body: dict) -> MessageSendResult:
        self._record("add_msg_template", body)
        msgid = self._new_id("msg")
        self.msg_templates[msgid] = dict(body)
        return MessageSendResult(msgid=msgid)

    def get_groupmsg_task(self, msgid: str, cursor: str) -> dict:
        self._record("get_groupmsg_task", msgid, cursor)
        return {"task_list": list(self.groupmsg_tasks.get(msgid, [])), "next_cursor": ""}

    def get_groupmsg_send_result(self, msgid: str, userid: str, cursor: str) -> dict:
        self._record("get_groupmsg_send_result", msgid, userid, cursor)
        return {"send_list": list(self.groupmsg_results.get((msgid, userid), [])), "next_cursor": ""}

    def remind_groupmsg_send(self, msgid: str) -> None:
        self._record("remind_groupmsg_send", msgid)

    def cancel_groupmsg_send(self, msgid: str) -> None:
        self._record("cancel_groupmsg_send", msgid)

    def upload_media(self, kind: str, filename: str, content: bytes) -> str:
        self._record("upload_media", kind, filename)
        media_id = self._new_id("media")
        self.media[media_id] = content
        return media_id
