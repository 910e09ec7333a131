"""Images we keep in the database and send to WeCom as temporary media, with the media id cached on the row.

WeCom takes some images only as temporary media (``media/upload``: a ``media_id`` valid 3 days, API.md §6.1): the
images of welcome messages and the covers of mini-program cards (``miniprogram.pic_media_id``), in welcome messages
(live codes) and in mass messages (journeys). The row that holds such an image also holds the media id it last got
and when that expires; ``cached_media_id`` reuses it until less than an hour is left, then uploads the image again.
When WeCom answers 40007 although our cache still counts the id as fresh (WeCom forgot it early), the caller clears
the cache with ``media_forget`` so the next send uploads afresh.

It lives here, not in ``wecom/`` (which stays free of our models) nor in one feature app: live codes and journeys
both use it and neither depends on the other.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Model, QuerySet

from scrm.clock import now
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
