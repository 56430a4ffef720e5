"""Test helpers: image files that are cheap to write but expensive to decode."""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def flat_png_bytes(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG, all black, of any size: a few dozen KB even at 16000 x 16000.

    Decoded as 8-bit RGB it takes ``3 * width * height`` bytes (768 MB at 16000 x 16000): a
    decompression bomb. Only the compressed stream is built (row by row), never the pixels.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    z = zlib.compressobj(9)
    rows_per_block = max(1, (1 << 20) // len(row))
    parts = []
    for start in range(0, height, rows_per_block):
        parts.append(z.compress(row * min(rows_per_block, height - start)))
    parts.append(z.flush())
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    )
