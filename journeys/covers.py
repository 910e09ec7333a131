"""Covers of mini-program cards in message templates: uploaded by the operator, sent to WeCom as temporary media.

WeCom's ``add_msg_template`` takes a mini-program card only with ``pic_media_id``, a temporary media id (API.md §6.1,
valid 3 days). The operator uploads the cover with the template (``template_cover_set``: PNG or JPEG, byte size and
pixels checked before decoding by ``scrm.media.image_check``, as for live-code welcome images); the rendered content names it by its SHA-256
(``cover_sha``). Right before a task is created, the sender turns that into the ``pic_media_id`` of the cover
(``wecom_attachments``), through the cache shared with live codes (scrm/media.py): uploaded now unless the template's
cached media id has more than an hour left. When WeCom answers 40007 anyway, ``covers_forget`` clears the cache.
"""

from collections.abc import Sequence

from django.utils.translation import gettext as _

from journeys.messages import COVER_KEY
from journeys.models import MessageTemplate, OutboundMessage
from scrm.media import ImageFields, MissingImage, cached_media_id, image_check, media_forget

COVER_FIELDS = ImageFields(image="cover", image_type="cover_type", image_sha="cover_sha",
                           media_id="cover_media_id", expires_at="cover_media_expires_at")


class CoverMissing(Exception):
    """A mini-program card whose cover cannot be found: never uploaded (a template typed in before covers were
    uploaded), or removed since. Nothing can be sent for it: WeCom refuses a card without ``pic_media_id``."""

    def __init__(self, title: str) -> None:
        self.title = title
        super().__init__(_("the mini-program “%(title)s” has no cover image: upload one with its message template, "
                           "then resend these messages") % {"title": title})


def template_cover_set(*, template: MessageTemplate, content: bytes, name: str = "", save: bool = True) -> None:
    """Put an uploaded cover on a mini-program template (the media id of the old one is forgotten). PNG or JPEG,
    size and pixels checked before any decoding; raises ``ApplicationError`` otherwise."""
    checked = image_check(content, need_qr=False)
    template.cover, template.cover_type, template.cover_sha = content, checked.content_type, checked.sha
    template.cover_name, template.cover_media_id, template.cover_media_expires_at = name[:100], "", None
    if save:
        template.save()


def _cover_template(sha: str, row_id: int) -> MessageTemplate | None:
    """The template holding the cover ``sha``; else (content queued before covers were uploaded, or a cover replaced
    since) the current cover of the template that queued the row."""
    with_cover = MessageTemplate.objects.exclude(cover_sha="").defer("cover").order_by("pk")
    template = with_cover.filter(cover_sha=sha).first() if sha else None
    if template is None:
        ids = OutboundMessage.objects.filter(pk=row_id).values_list("step__template_id",
                                                                    "broadcast__template_id").first() or ()
        template_id = next((i for i in ids if i), None)
        if template_id is not None:
            template = with_cover.filter(pk=template_id, kind=MessageTemplate.Kind.MINIPROGRAM).first()
    return template


def wecom_attachments(attachments: Sequence[dict], *, row_id: int) -> tuple[tuple[dict, ...], list[int]]:
    """The stored attachments as WeCom takes them: each mini-program's ``cover_sha`` becomes ``pic_media_id``, the
    media id of its cover (uploaded now unless cached). Also returns the ids of the templates whose covers went.

    ``row_id``: one of the outbox rows being sent (to find its template's cover when the content names none).
    Raises ``CoverMissing``, or ``WeComError`` when the upload fails."""
    out: list[dict] = []
    used: list[int] = []
    for attachment in attachments:
        if attachment.get("msgtype") != "miniprogram":
            out.append(attachment)
            continue
        body = {k: v for k, v in (attachment.get("miniprogram") or {}).items() if k not in (COVER_KEY, "pic_media_id")}
        template = _cover_template(str((attachment.get("miniprogram") or {}).get(COVER_KEY) or ""), row_id)
        if template is None:
            raise CoverMissing(str(body.get("title", "")))
        try:
            body["pic_media_id"] = cached_media_id(template, name=f"template-cover-{template.pk}",
                                                   fields=COVER_FIELDS)
        except MissingImage as exc:  # the cover was removed between the lookup and the upload
            raise CoverMissing(str(body.get("title", ""))) from exc
        used.append(template.pk)
        out.append({"msgtype": "miniprogram", "miniprogram": body})
    return tuple(out), used


def covers_forget(template_ids: Sequence[int]) -> int:
    """WeCom forgot a cover early (40007): the next send uploads it again."""
    return media_forget(MessageTemplate.objects.filter(pk__in=list(template_ids)), fields=COVER_FIELDS)
