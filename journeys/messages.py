"""Message templates: ``{{ field }}`` placeholders over a fixed set of fields (pure: no ORM, no I/O).

Rendering normalises whitespace (non-breaking spaces, trailing blanks) in one place, so the preview and
the sent text are the same string. An unknown field is refused when the template is saved.

A mini-program attachment carries ``cover_sha``, the SHA-256 of the cover image uploaded with the template, never a
media id: WeCom's ``pic_media_id`` expires after 3 days, so the sender puts it in right before sending
(journeys/covers.py) and the stored content and its hash stay the same whatever media id is used.
"""

import hashlib
import json
import re
from dataclasses import dataclass

from django.utils.translation import gettext as _

FIELDS = {
    "name": "the customer's name",
    "staff_name": "the sending staff member's name",
    "coupon_name": "the entitlement's name",
    "coupon_expires": "the entitlement's expiry date",
    "today": "today's date (corp time zone)",
}
# Fields that differ from one customer to the next. WeCom takes one content per confirm-task, so a template using
# any of them becomes one task per customer, each confirmed separately by the staff member.
PER_CUSTOMER_FIELDS = frozenset({"name", "coupon_name", "coupon_expires"})
SAMPLE = {"name": "小红", "staff_name": "张伟", "coupon_name": "满100减20券", "coupon_expires": "2026-12-31",
          "today": "2026-11-23"}
_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
TEXT_MAX_BYTES = 4000
ATTACHMENT_KEYS = {"image": {"pic_url"}, "link": {"title", "url"}, "miniprogram": {"title", "appid", "page"}}
COVER_KEY = "cover_sha"  # of a mini-program attachment: set from the uploaded cover (MessageTemplate.attachment_sync)


class TemplateError(ValueError):
    def __init__(self, message: str, *, field: str = "text") -> None:
        super().__init__(message)
        self.field = field  # the template's field the problem is about


@dataclass(frozen=True)
class Rendered:
    text: str
    attachments: tuple

    def as_dict(self) -> dict:
        return {"text": self.text, "attachments": list(self.attachments)}

    @property
    def digest(self) -> str:
        return content_hash(self.as_dict())


def content_hash(content: dict) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def template_fields(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text or ""))


def template_per_customer_fields(text: str) -> set[str]:
    """The placeholders of ``text`` that make its content differ per customer (one confirm-task each)."""
    return template_fields(text) & PER_CUSTOMER_FIELDS


def template_check(*, text: str, kind: str, attachment: dict) -> None:
    unknown = sorted(template_fields(text) - set(FIELDS))
    if unknown:
        raise TemplateError(f"unknown field(s): {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")
    if "{{" in _PLACEHOLDER.sub("", text or "") or "}}" in _PLACEHOLDER.sub("", text or ""):
        raise TemplateError("an unclosed or malformed {{ placeholder }}")
    if not (text or "").strip() and kind == "text":
        raise TemplateError("a text message needs text")
    if len(render_text(text, SAMPLE).encode()) > TEXT_MAX_BYTES:
        raise TemplateError(f"the text is longer than WeCom's {TEXT_MAX_BYTES} bytes")
    missing = ATTACHMENT_KEYS.get(kind, set()) - set(attachment or {})
    if missing:
        raise TemplateError(f"the {kind} attachment needs: {', '.join(sorted(missing))}")
    if kind == "miniprogram" and not (attachment or {}).get(COVER_KEY):
        raise TemplateError(_("The mini-program needs a cover image: upload one (PNG or JPEG) with the template. "
                              "WeCom shows it on the card and takes it only as an uploaded image."),
                            field="attachment")


def render_text(text: str, values: dict) -> str:
    out = _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "") or ""), text or "")
    out = out.replace("\u00a0", " ")
    return "\n".join(line.rstrip() for line in out.strip().splitlines())


def render(*, text: str, kind: str, attachment: dict, values: dict) -> Rendered:
    attachments: tuple = ()
    if kind in ATTACHMENT_KEYS and attachment:
        attachments = ({"msgtype": kind, kind: dict(attachment)},)
    return Rendered(text=render_text(text, values), attachments=attachments)
