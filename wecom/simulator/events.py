"""Decrypted callback payloads (API.md §2.6-2.8): change_external_contact / _chat / _tag XML documents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .clock import Clock

FieldValue = str | int | list[str]


def cdata(text: str) -> str:
    """Wrap text in CDATA, splitting any ``]]>`` so the section cannot be closed early."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_event(to_user: str, create_time: int, event: str, fields: Sequence[tuple[str, FieldValue]]) -> str:
    parts = [
        "<xml>",
        f"<ToUserName>{cdata(to_user)}</ToUserName>",
        f"<FromUserName>{cdata('sys')}</FromUserName>",
        f"<CreateTime>{create_time}</CreateTime>",
        f"<MsgType>{cdata('event')}</MsgType>",
        f"<Event>{cdata(event)}</Event>",
    ]
    for name, value in fields:
        if isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        elif isinstance(value, list):
            items = "".join(f"<Item>{cdata(item)}</Item>" for item in value)
            parts.append(f"<{name}>{items}</{name}>")
        else:
            parts.append(f"<{name}>{cdata(value)}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


@dataclass(frozen=True)
class CallbackEvent:
    """One callback to deliver: the plaintext XML plus a few keys for the delivery log."""

    event: str
    change_type: str
    xml: str
    keys: dict[str, str] = field(default_factory=dict)


class EventFactory:
    def __init__(self, corp_id: str, clock: Clock) -> None:
        self._corp_id = corp_id
        self._clock = clock

    def contact(
        self,
        change_type: str,
        userid: str,
        external_userid: str,
        *,
        state: str = "",
        welcome_code: str = "",
        source: str = "",
    ) -> CallbackEvent:
        fields: list[tuple[str, FieldValue]] = [
            ("ChangeType", change_type),
            ("UserID", userid),
            ("ExternalUserID", external_userid),
        ]
        if state:
            fields.append(("State", state))
        if welcome_code:
            fields.append(("WelcomeCode", welcome_code))
        if source:
            fields.append(("Source", source))
        return self._build(
            "change_external_contact",
            change_type,
            fields,
            {"UserID": userid, "ExternalUserID": external_userid},
        )

    def chat(self, change_type: str, chat_id: str, *, update_detail: str = "") -> CallbackEvent:
        """create / dismiss, or an update whose detail carries no member change."""
        fields: list[tuple[str, FieldValue]] = [("ChatId", chat_id), ("ChangeType", change_type)]
        if update_detail:
            fields.append(("UpdateDetail", update_detail))
        return self._build(
            "change_external_chat", change_type, fields, {"ChatId": chat_id, "UpdateDetail": update_detail}
        )

    def chat_members(
        self,
        chat_id: str,
        *,
        joined: bool,
        scene: int,
        member_ids: list[str],
        last_version: str,
        current_version: str,
    ) -> CallbackEvent:
        """update/add_member (JoinScene: 0 invited, 3 QR) or update/del_member (QuitScene: 0 left, 1 removed)."""
        detail = "add_member" if joined else "del_member"
        fields: list[tuple[str, FieldValue]] = [
            ("ChatId", chat_id),
            ("ChangeType", "update"),
            ("UpdateDetail", detail),
            ("JoinScene" if joined else "QuitScene", scene),
            ("MemChangeCnt", len(member_ids)),
            ("MemChangeList", list(member_ids)),
            ("LastMemVer", last_version),
            ("CurMemVer", current_version),
        ]
        return self._build(
            "change_external_chat", "update", fields, {"ChatId": chat_id, "UpdateDetail": detail}
        )

    def tag(self, change_type: str, tag_id: str, tag_type: str = "") -> CallbackEvent:
        fields: list[tuple[str, FieldValue]] = [("Id", tag_id)]
        if tag_type:
            fields.append(("TagType", tag_type))
        fields.append(("ChangeType", change_type))
        return self._build("change_external_tag", change_type, fields, {"Id": tag_id, "TagType": tag_type})

    def _build(
        self, event: str, change_type: str, fields: list[tuple[str, FieldValue]], keys: dict[str, str]
    ) -> CallbackEvent:
        xml = render_event(self._corp_id, self._clock.now_int(), event, fields)
        return CallbackEvent(
            event=event, change_type=change_type, xml=xml, keys={k: v for k, v in keys.items() if v}
        )
