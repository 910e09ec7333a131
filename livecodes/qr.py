"""The permanent QR of a code, as PNG (print sizes, optional centre logo) or SVG, in the code's colours."""

import io
import re

import qrcode
import qrcode.image.svg
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_M

SIZES = (256, 512, 1024, 2048, 4096)
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def colour(value: str, default: str) -> str:
    return value if value and _COLOUR.match(value) else default


def _matrix(url: str, *, with_logo: bool) -> qrcode.QRCode:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_H if with_logo else ERROR_CORRECT_M, border=2, box_size=1)
    qr.add_data(url)
    qr.make(fit=True)
    return qr


def render_png(url: str, *, size: int = 1024, fg: str = "#000000", bg: str = "#ffffff",
               logo: bytes | None = None) -> bytes:
    from PIL import Image

    size = min(SIZES, key=lambda s: abs(s - size))
    qr = _matrix(url, with_logo=bool(logo))
    modules = qr.modules_count + 2 * qr.border
    qr.box_size = max(1, size // modules)
    image = qr.make_image(fill_color=colour(fg, "#000000"), back_color=colour(bg, "#ffffff")).get_image()
    image = image.convert("RGB").resize((size, size), Image.Resampling.NEAREST)
    if logo:
        try:
            mark = Image.open(io.BytesIO(logo)).convert("RGBA")
            side = size // 5
            mark.thumbnail((side, side))
            pad = Image.new("RGB", (mark.width + 8, mark.height + 8), colour(bg, "#ffffff"))
            pad.paste(mark, (4, 4), mark)
            image.paste(pad, ((size - pad.width) // 2, (size - pad.height) // 2))
        except OSError:
            pass  # a logo that cannot be read is left out rather than breaking the print file
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(300, 300))
    return out.getvalue()


def render_svg(url: str, *, fg: str = "#000000", bg: str = "#ffffff") -> bytes:
    qr = _matrix(url, with_logo=False)
    qr.box_size = 10
    image = qr.make_image(image_factory=qrcode.image.svg.SvgPathFillImage)
    text = image.to_string(encoding="unicode")
    text = text.replace('fill="#000000"', f'fill="{colour(fg, "#000000")}"')
    text = text.replace('fill="white"', f'fill="{colour(bg, "#ffffff")}"')
    return text.encode()
