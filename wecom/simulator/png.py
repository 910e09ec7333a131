"""A deterministic QR-look-alike PNG for contact-way and join-way ``qr_code`` URLs.

It is not a scannable QR code (that would need an encoder outside the standard library); it only gives
``<img src=qr_code>`` something recognisable, different per config_id. Scanning is simulated with the
``add_contact`` / ``join_group`` control actions.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib

MODULES = 25
SCALE = 8
BORDER = 4
FINDER = 7
BLACK, WHITE = 0, 255


def _pseudo_random_bits(seed: str, count: int) -> list[bool]:
    stream = b""
    counter = 0
    while len(stream) * 8 < count:
        stream += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return [bool(stream[i // 8] >> (i % 8) & 1) for i in range(count)]


def _finder_cell(row: int, col: int) -> bool | None:
    """Dark/light for cells inside (or next to) one of the three corner finder patterns, else None."""
    for top, left in ((0, 0), (0, MODULES - FINDER), (MODULES - FINDER, 0)):
        r, c = row - top, col - left
        if -1 <= r <= FINDER and -1 <= c <= FINDER:
            if not (0 <= r < FINDER and 0 <= c < FINDER):
                return False  # separator
            ring = max(abs(r - 3), abs(c - 3))
            return ring != 2
    return None


def _matrix(seed: str) -> list[list[bool]]:
    bits = iter(_pseudo_random_bits(seed, MODULES * MODULES))
    matrix = []
    for row in range(MODULES):
        line = []
        for col in range(MODULES):
            bit = next(bits)
            finder = _finder_cell(row, col)
            line.append(bit if finder is None else finder)
        matrix.append(line)
    return matrix


def _png(width: int, height: int, raw: bytes) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


@functools.lru_cache(maxsize=256)
def placeholder_qr(seed: str) -> bytes:
    size = (MODULES + 2 * BORDER) * SCALE
    matrix = _matrix(seed)
    rows = []
    for y in range(size):
        module_row = y // SCALE - BORDER
        pixels = bytearray([WHITE] * size)
        if 0 <= module_row < MODULES:
            for module_col, dark in enumerate(matrix[module_row]):
                if dark:
                    start = (module_col + BORDER) * SCALE
                    pixels[start : start + SCALE] = bytes([BLACK] * SCALE)
        rows.append(b"\x00" + bytes(pixels))
    return _png(size, size, b"".join(rows))
