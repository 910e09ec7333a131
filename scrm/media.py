"""Images we keep in the database and send to WeCom as temporary media, with the media id cached on the row.

WeCom takes some images only as temporary media (``media/upload``: a ``media_id`` valid 3 days, API.md §6.1): the
images of welcome messages and the covers of mini-program cards (``miniprogram.pic_media_id``), in welcome messages
(live codes) and in mass messages (journeys). The row that holds such an image also holds the media id it last got
and when that expires; ``cached_media_id`` reuses it until less than an hour is left, then uploads the image again.
When WeCom answers 40007 although our cache still counts the id as fresh (WeCom forgot it early), the caller clears
the cache with ``media_forget`` so the next send uploads afresh. ``image_check`` is the check every uploaded image
passes before it is stored (PNG/JPEG, size and pixels before decoding, optionally the QR code it holds).

It lives here, not in ``wecom/`` (which stays free of our models) nor in one feature app: live codes and journeys
both use it and neither depends on the other.
"""

import hashlib
import io
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Model, QuerySet
from django.utils.translation import gettext as _

from scrm.clock import now
from scrm.errors import ApplicationError
from wecom import gateway

MEDIA_TTL = timedelta(days=3)  # WeCom temporary media (API.md §6.1)
MEDIA_MARGIN = timedelta(hours=1)  # upload again when less than this is left
INVALID_MEDIA_ID = 40007


class MissingImage(ValueError):
    """The row has no image to upload (e.g. a mini-program whose cover was never uploaded)."""


@dataclass(frozen=True)
class ImageFields:
    """The names of a model's fields holding the image bytes, their content type and SHA-256, the cached media id
    and its expiry."""

    image: str = "image"
    image_type: str = "image_type"
    image_sha: str = "image_sha"
    media_id: str = "media_id"
    expires_at: str = "media_expires_at"


DEFAULT_FIELDS = ImageFields()


def cached_media_id(row: Model, *, name: str, fields: ImageFields = DEFAULT_FIELDS) -> str:
    """The WeCom media id of the row's image: the cached one while more than an hour of it is left, else a fresh
    upload (as ``name`` + its extension), valid 3 days from now and cached on the row. Raises ``WeComError`` when
    WeCom refuses the upload, ``MissingImage`` when the row has no image.

    The cache is written only while the row still holds the image that was uploaded: an image replaced meanwhile
    keeps its cache empty."""
    started = now()
    media_id, expires_at = getattr(row, fields.media_id), getattr(row, fields.expires_at)
    if media_id and expires_at and expires_at - started > MEDIA_MARGIN:
        return media_id
    content = getattr(row, fields.image)
    if not content:
        raise MissingImage(f"{type(row).__name__} {row.pk} has no image")
    extension = "png" if getattr(row, fields.image_type) == "image/png" else "jpg"
    media_id = gateway.media_upload(kind="image", filename=f"{name}.{extension}", content=bytes(content))
    expires_at = started + MEDIA_TTL
    setattr(row, fields.media_id, media_id)
    setattr(row, fields.expires_at, expires_at)
    type(row).objects.filter(pk=row.pk, **{fields.image_sha: getattr(row, fields.image_sha)}).update(
        **{fields.media_id: media_id, fields.expires_at: expires_at})
    return media_id


def media_forget(rows: QuerySet, *, fields: ImageFields = DEFAULT_FIELDS) -> int:
    """Clear the cached media ids of ``rows`` (after a 40007): their next send uploads the image again."""
    return rows.update(**{fields.media_id: "", fields.expires_at: None})


# --- uploads: checked before anything decodes them ------------------------------------------------------------------
# Used for group QR images, welcome images and mini-program covers (live codes) and template covers (journeys); the
# limits are the LIVECODE_UPLOAD_* settings, where they were first needed.
class CheckedImage:
    def __init__(self, content_type: str, sha: str, qr_text: str) -> None:
        self.content_type, self.sha, self.qr_text = content_type, sha, qr_text


def image_check(content: bytes, *, need_qr: bool = True) -> CheckedImage:
    """PNG or JPEG only; byte size and pixel count checked before any decoding; then the QR read."""
    from PIL import Image, UnidentifiedImageError

    if len(content) > settings.LIVECODE_UPLOAD_MAX_BYTES:
        raise ApplicationError(_("The image is larger than %(n)s KB.") % {
            "n": settings.LIVECODE_UPLOAD_MAX_BYTES // 1024})
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        expected = "PNG"
    elif content.startswith(b"\xff\xd8\xff"):
        expected = "JPEG"
    else:
        raise ApplicationError(_("Upload a PNG or JPEG image."))
    try:
        image = Image.open(io.BytesIO(content))  # reads the header only
        width, height = image.size
        if image.format != expected:
            raise ApplicationError(_("Upload a PNG or JPEG image."))
        if width * height > settings.LIVECODE_UPLOAD_MAX_PIXELS:
            raise ApplicationError(_("The image has too many pixels (at most %(n)s).") % {
                "n": settings.LIVECODE_UPLOAD_MAX_PIXELS})
        qr_text = ""
        if need_qr:
            import zxingcpp

            image.load()
            found = [r for r in zxingcpp.read_barcodes(image.convert("L"))
                     if r.format == zxingcpp.BarcodeFormat.QRCode and r.text]
            if not found:
                raise ApplicationError(_("No QR code was found in the image."))
            qr_text = found[0].text[:512]
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ApplicationError(_("The file is not a readable image.")) from exc
    return CheckedImage("image/png" if expected == "PNG" else "image/jpeg", hashlib.sha256(content).hexdigest(),
                        qr_text)
