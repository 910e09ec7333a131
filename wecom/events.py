"""Parsing of callback envelopes and decrypted events (pure; defusedxml against hostile XML)."""

import hashlib
import json
from xml.etree.ElementTree import Element  # noqa: S405 - only the type; parsing goes through defusedxml

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from wecom.contracts import CallbackMessage


class MalformedXml(Exception):
    """The XML is malformed, hostile (entities, DTDs) or lacks required fields."""


# Fields that identify one event; two retries of the same event agree on all of them, two different
# events (even in the same second) differ in at least one.
IDENTITY_FIELDS = (
    "ToUserName",
    "Event",
    "ChangeType",
    "CreateTime",
    "UserID",
    "ExternalUserID",
    "State",
    "WelcomeCode",
    "Source",
    "FailReason",
    "ChatId",
    "UpdateDetail",
    "MemChangeList",
    "LastMemVer",
    "CurMemVer",
    "Id",
    "TagType",
    "StrategyId",
    "MsgId",
)


def _parse(xml: bytes | str) -> Element:
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True)
    except (DefusedXmlException, SafeET.ParseError, ValueError) as exc:
        raise MalformedXml(f"invalid XML: {exc.__class__.__name__}") from exc
    if root.tag != "xml":
        raise MalformedXml("root element must be <xml>")
    return root


def parse_envelope(body: bytes) -> dict[str, str]:
    """Return ToUserName, AgentID and Encrypt from the POST body."""
    root = _parse(body)
    fields = {child.tag: (child.text or "") for child in root}
    if not fields.get("Encrypt"):
        raise MalformedXml("no <Encrypt> element")
    return fields


def event_fields(xml: bytes | str) -> dict[str, object]:
    """Flatten a decrypted event: text children become strings, <Item> lists become lists."""
    root = _parse(xml)
    fields: dict[str, object] = {}
    for child in root:
        items = [item.text or "" for item in child if item.tag == "Item"]
        fields[child.tag] = items if items or len(child) else (child.text or "").strip()
    return fields


def event_key(fields: dict[str, object]) -> str:
    identity = {name: fields.get(name, "") for name in IDENTITY_FIELDS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def to_message(fields: dict[str, object]) -> CallbackMessage:
    def text(name: str) -> str:
        value = fields.get(name, "")
        return value if isinstance(value, str) else ""

    items = fields.get("MemChangeList", [])
    if isinstance(items, str):
        items = [items] if items else []
    return CallbackMessage(
        event=text("Event"),
        msg_type=text("MsgType"),
        change_type=text("ChangeType"),
        create_time=_int(fields.get("CreateTime")) or 0,
        to_user=text("ToUserName"),
        user_id=text("UserID"),
        external_user_id=text("ExternalUserID"),
        state=text("State"),
        welcome_code=text("WelcomeCode"),
        source=text("Source"),
        fail_reason=text("FailReason"),
        chat_id=text("ChatId"),
        update_detail=text("UpdateDetail"),
        join_scene=_int(fields.get("JoinScene")),
        quit_scene=_int(fields.get("QuitScene")),
        mem_change_cnt=_int(fields.get("MemChangeCnt")),
        mem_change_list=tuple(str(i) for i in items),
        last_mem_ver=text("LastMemVer"),
        cur_mem_ver=text("CurMemVer"),
        tag_id=text("Id"),
        tag_type=text("TagType"),
        strategy_id=text("StrategyId"),
    )
