"""The one place where fcam reads image and mask files.

Every reader looks at the file's header first (a PNG's IHDR chunk or a JPEG's frame header read
here, in microseconds; any other format by PIL, which parses headers without decoding pixels) and
refuses an image above :data:`MAX_IMAGE_PIXELS` before decoding it; only then are the pixels
decoded, by OpenCV, and their shape checked against the header. Whatever goes wrong (missing or
empty file, a format neither library knows, a truncated or corrupt file, a mode OpenCV cannot
convert) becomes one :class:`fcam.errors.DataError` whose message starts with the file's path.

Sizes are those of the stored pixel grid: EXIF orientation is ignored, as PIL and wsolevaluation
do, because the boxes and ``image_sizes.txt`` of the benchmarks refer to that grid.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from PIL import Image

from fcam.errors import DataError

__all__ = ["MAX_IMAGE_PIXELS", "read_image_rgb", "read_image_size", "read_mask"]

#: Largest image fcam decodes, in pixels (width x height): 2**26 = 67,108,864, e.g. 8192 x 8192.
#: The reason is memory. A compressed file says nothing about the memory its pixels take: a
#: 16000 x 16000 PNG of flat colour takes 30-250 KB on disk and 768 MB once decoded as 8-bit RGB, and
#: ``fcam localize`` keeps float copies at full resolution (about 20 bytes per pixel in all, i.e.
#: 5 GB for that PNG, issue #13). At this limit one image takes 192 MiB decoded and about
#: 1.3 GiB in ``fcam localize``; every benchmark image (CUB about 500 x 375, OpenImages at most
#: 1024 on a side) and a 50-megapixel photograph are far below it. Larger images are refused
#: from their header, before any pixel is decoded; downscale them first.
MAX_IMAGE_PIXELS: Final = 1 << 26

# cv2 applies EXIF orientation by default; PIL (wsolevaluation's loader) does not: ignore it.
_RGB_FLAGS: Final = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_GREY_FLAGS: Final = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION
_JPEG_SOI: Final = b"\xff\xd8"
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def _png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR chunk, or None if ``data`` does not start like a PNG.

    The PNG specification puts IHDR first: 8-byte signature, 4-byte length, ``IHDR``, then width
    and height as big-endian uint32. Reading them here costs about a microsecond, against some
    20 us for PIL's parser, which matters on the training data path (the synthetic benchmark is
    PNG and a 40 x 40 PNG decodes in about 25 us). Anything else goes through PIL.
    """
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return (width, height) if width > 0 and height > 0 else None


#: Start-of-frame markers (baseline, progressive, lossless, arithmetic...): C0-CF but C4, C8, CC.
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's start-of-frame segment, or None if not found.

    After the SOI marker a JPEG is a chain of segments ``FF <marker> <uint16 length> <payload>``
    (ITU-T T.81, B.1); the start-of-frame payload is precision (1 byte), height and width
    (big-endian uint16). Walking the chain skips any EXIF or ICC segment by its length. This costs
    a few microseconds, against some 50 us for PIL's parser, next to a decode of about 1 ms for a
    CUB image. Anything unusual (a height left to a DNL marker, a broken chain) returns None and
    the caller falls back to PIL.
    """
    if data[:2] != _JPEG_SOI:
        return None
    i, end = 2, len(data)
    while i + 9 <= end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return (width, height) if width > 0 and height > 0 else None
        if marker == 0xDA:  # start of scan before any frame header: not a valid JPEG
            return None
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(
            f"{path}: image too large, {width}x{height} = {width * height} pixels; fcam decodes at most "
            f"{max_pixels} pixels (fcam.data.images.MAX_IMAGE_PIXELS), downscale it first"
        )


def _header_size(path: Path, source: Path | io.BytesIO, max_pixels: int | None) -> tuple[int, int]:
    """``(width, height)`` from the header of ``source`` (the file ``path`` or its bytes), by PIL."""
    try:
        # PIL warns above its own limit (Image.MAX_IMAGE_PIXELS); fcam applies MAX_IMAGE_PIXELS below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:
        # Above twice PIL's own limit PIL raises, and no limit of fcam's can let such an image in.
        limit = f"{max_pixels} pixels (fcam.data.images.MAX_IMAGE_PIXELS)" if max_pixels else "PIL's limit"
        raise DataError(
            f"{path}: image too large ({exc}); fcam decodes at most {limit}, downscale it first"
        ) from exc
    except (OSError, ValueError, EOFError) as exc:  # UnidentifiedImageError is an OSError
        what = "no image format recognised" if isinstance(exc, Image.UnidentifiedImageError) else exc
        raise DataError(f"{path}: not a readable image (cannot read the image header: {what})") from exc
    _check_pixels(path, width, height, max_pixels)
    return width, height


def read_image_size(path: Path, *, max_pixels: int | None = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of an image from its header only (no pixel is decoded).

    This is the size as stored, without EXIF rotation: the size PIL, torchvision and
    wsolevaluation see, and the shape the readers below return.

    Args:
        path: an image file.
        max_pixels: refuse an image with more pixels than this; None: no limit of fcam's own
            (PIL still refuses above twice ``PIL.Image.MAX_IMAGE_PIXELS``).

    Returns:
        ``(width, height)``, positive integers.

    Raises:
        DataError: the file is missing, empty, not an image, or above ``max_pixels``.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file not found") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror or exc})") from exc
    if not head:
        raise DataError(f"{path}: empty file (0 bytes), expected an image")
    size = _png_size(head)
    if size is None:
        return _header_size(path, path, max_pixels)
    _check_pixels(path, *size, max_pixels)
    return size


def _decode(path: Path, flags: int, max_pixels: int | None) -> np.ndarray:
    """Read ``path``, check its header, then decode it with OpenCV ``flags``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: cannot read image (file not found)") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror or exc})") from exc
    if not data:
        raise DataError(f"{path}: empty file (0 bytes), expected an image")
    size = _png_size(data) or _jpeg_size(data)
    if size is None:
        width, height = _header_size(path, io.BytesIO(data), max_pixels)
    else:
        width, height = size
        _check_pixels(path, width, height, max_pixels)
    # OpenCV decodes a JPEG without its end-of-image marker half-grey, without an error.
    if data[:2] == _JPEG_SOI and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker after the last scan)")
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise DataError(f"{path}: not a readable image (OpenCV: {str(exc).strip()})") from exc
    if pixels is None:
        raise DataError(f"{path}: not a readable image (corrupt, truncated or unsupported format/mode)")
    if pixels.shape[:2] != (height, width):
        raise DataError(
            f"{path}: decoded as {pixels.shape[1]}x{pixels.shape[0]} but its header says {width}x{height}"
        )
    return pixels


def read_image_rgb(path: Path, *, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as RGB: greyscale is replicated, alpha dropped, 16-bit scaled to 8.

    Args:
        path: a JPEG, PNG, BMP, TIFF or other format both PIL (header) and OpenCV (pixels) read.
        max_pixels: refuse an image with more pixels than this, from its header
            (:data:`MAX_IMAGE_PIXELS`; None: no limit of fcam's own).

    Returns:
        (H, W, 3) uint8 RGB, in the stored orientation (EXIF orientation ignored, like PIL).

    Raises:
        DataError: the file is missing, empty, unreadable, not an image, corrupt or truncated
            (including a JPEG without an end-of-image marker after its last scan, which OpenCV
            would decode half-grey), in a mode OpenCV cannot convert, or above ``max_pixels``.
    """
    path = Path(path)
    return cv2.cvtColor(_decode(path, _RGB_FLAGS, max_pixels), cv2.COLOR_BGR2RGB)


def read_mask(path: Path, *, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read a mask file as one grey channel (colour is converted to luma, 16-bit scaled to 8).

    Args:
        path: a PNG (or any image) mask.
        max_pixels: as for :func:`read_image_rgb`.

    Returns:
        (H, W) uint8, in the stored orientation.

    Raises:
        DataError: as for :func:`read_image_rgb`.
    """
    path = Path(path)
    return _decode(path, _GREY_FLAGS, max_pixels)
