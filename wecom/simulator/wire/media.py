"""media/upload (temporary media, valid 3 days) and media/uploadimg (permanent image URL), API.md §6.1."""

from __future__ import annotations

from .. import ids
from ..errors import ApiError
from ..multipart import UploadedFile
from ..params import Params
from ..state import Media
from .base import Endpoint, Payload, WireContext

MB = 1024 * 1024
MIN_SIZE = 5
# (size limit, errcode when exceeded) per media type.
UPLOAD_LIMITS = {
    "image": (10 * MB, 40009),
    "voice": (2 * MB, 40006),
    "video": (10 * MB, 40011),
    "file": (20 * MB, 40006),
}
UPLOADIMG_LIMIT = 2 * MB
# WeCom takes JPG and PNG images (both media/upload?type=image and media/uploadimg), recognised by their first bytes.
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def _require_file(ctx: WireContext) -> UploadedFile:
    upload = ctx.files.get("media")
    if upload is None:
        raise ApiError(41005, "media data missing: send the file as multipart field 'media'")
    if not upload.data:
        raise ApiError(44001)
    return upload


def _store(ctx: WireContext, upload: UploadedFile, media_type: str, *, permanent: bool) -> Media:
    media = Media(
        media_id=ids.media_id(),
        type=media_type,
        filename=upload.filename,
        content_type=upload.content_type,
        size=len(upload.data),
        created_at=ctx.now,
        permanent=permanent,
    )
    ctx.world.media[media.media_id] = media
    ctx.media_blobs[media.media_id] = upload.data
    return media


def upload(ctx: WireContext, p: Params) -> Payload:
    media_type = p.text("type")
    if media_type not in UPLOAD_LIMITS:
        raise ApiError(40004, f"invalid media type: {media_type!r} (image, voice, video or file)")
    upload_file = _require_file(ctx)
    if media_type == "image" and not upload_file.data.startswith(IMAGE_SIGNATURES):
        raise ApiError(40005, "image media must be a JPG or PNG image")
    limit, errcode = UPLOAD_LIMITS[media_type]
    if not MIN_SIZE <= len(upload_file.data) <= limit:
        raise ApiError(errcode, f"{media_type} size must be between {MIN_SIZE} bytes and {limit // MB} MB")
    media = _store(ctx, upload_file, media_type, permanent=False)
    return {"type": media_type, "media_id": media.media_id, "created_at": str(media.created_at)}


def uploadimg(ctx: WireContext, p: Params) -> Payload:
    upload_file = _require_file(ctx)
    if not upload_file.data.startswith(IMAGE_SIGNATURES):
        raise ApiError(40005, "uploadimg accepts JPG or PNG images only")
    if not MIN_SIZE <= len(upload_file.data) <= UPLOADIMG_LIMIT:
        raise ApiError(40009, "image size must be between 5 bytes and 2 MB")
    media = _store(ctx, upload_file, "image", permanent=True)
    return {"url": f"{ctx.public_url}/sim/media/{media.media_id}"}


ENDPOINTS: list[Endpoint] = [
    Endpoint("media/upload", "POST", upload, mutates=True, source="multipart"),
    Endpoint("media/uploadimg", "POST", uploadimg, mutates=True, source="multipart"),
]
