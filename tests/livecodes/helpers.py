"""Small builders for live-code tests."""

import io

import qrcode

from contacts.models import Corp
from livecodes import services
from livecodes.models import LiveCode


def qr_png(text: str, *, size: int = 300) -> bytes:
    image = qrcode.make(text).get_image().convert("RGB").resize((size, size))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def qr_jpeg(text: str) -> bytes:
    out = io.BytesIO()
    qrcode.make(text).get_image().convert("RGB").save(out, format="JPEG", quality=95)
    return out.getvalue()


def group_code(corp: Corp, *, images: int = 2, cap: int = 3, mode: str = "fill", **fields) -> LiveCode:
    code = services.livecode_create(corp=corp, kind="group", name="新品群", mode=mode, **fields)
    for i in range(images):
        services.target_add_image(code=code, content=qr_png(f"https://weixin.qq.com/g/group{i}"), label=f"群{i}",
                                  cap=cap)
    return code
