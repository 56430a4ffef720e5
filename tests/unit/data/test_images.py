"""fcam.data.images: header first, a pixel limit before decoding, one DataError naming the file."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fcam.data.images import MAX_IMAGE_PIXELS, read_image_rgb, read_image_size, read_mask
from fcam.errors import DataError
from tests.unit.data._images import flat_png_bytes

READERS: list[Callable[[Path], object]] = [read_image_rgb, read_mask, read_image_size]


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(cv2, "imdecode", refuse)


@pytest.mark.parametrize("reader", READERS)
def test_empty_missing_and_non_image_files_name_the_file(tmp_path: Path, reader) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image\n")
    (tmp_path / "folder.png").mkdir()
    cases = {
        "empty.png": r"empty\.png: empty file \(0 bytes\), expected an image",
        "gone.png": r"gone\.png: (cannot read image \(file not found\)|image file not found)",
        "text.png": r"text\.png: not a readable image \(cannot read the image header",
        "folder.png": r"folder\.png: (not a readable image|cannot read image)",
    }
    for name, match in cases.items():
        with pytest.raises(DataError, match=match):
            reader(tmp_path / name)


@pytest.mark.parametrize("reader", READERS)
def test_decompression_bomb_is_refused_from_its_header(tmp_path: Path, monkeypatch, reader) -> None:
    # 16000 x 16000 (256 Mpx, above PIL's own error limit) and 9000 x 8000 (72 Mpx: above fcam's
    # limit, below PIL's warning): both refused without a single pixel decoded, and no warning.
    assert MAX_IMAGE_PIXELS < 9000 * 8000
    huge, big = tmp_path / "huge.png", tmp_path / "big.png"
    huge.write_bytes(flat_png_bytes(16000, 16000))
    big.write_bytes(flat_png_bytes(9000, 8000))
    _no_decoding(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"huge\.png: image too large.*downscale it first"):
            reader(huge)
        with pytest.raises(DataError, match=r"big\.png: image too large, 9000x8000 = 72000000 pixels"):
            reader(big)


def test_pixel_limit_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(flat_png_bytes(50, 30))
    assert read_image_rgb(path, max_pixels=1500).shape == (30, 50, 3)
    assert read_image_size(path, max_pixels=1500) == (50, 30)
    with pytest.raises(DataError, match=r"a\.png: image too large, 50x30 = 1500 pixels; .* at most 1499"):
        read_mask(path, max_pixels=1499)


@pytest.mark.parametrize("name", ["corrupt/truncated.jpg", "corrupt/truncated.png"])
def test_truncated_files(tiny_root: Path, name: str) -> None:
    for reader in (read_image_rgb, read_mask):
        with pytest.raises(DataError, match=rf"{name}: (truncated JPEG|not a readable image)"):
            reader(tiny_root / name)


def test_opencv_errors_become_data_errors(tiny_root: Path, monkeypatch) -> None:
    def fail(*args: object) -> None:
        raise cv2.error("OpenCV(5.0.0) imdecode_: boom")

    monkeypatch.setattr(cv2, "imdecode", fail)
    with pytest.raises(DataError, match=r"a\.png: not a readable image \(OpenCV: .*boom\)"):
        read_image_rgb(tiny_root / "images/a.png")


@pytest.mark.parametrize(
    ("mode", "values"),
    [
        ("1", np.array([[0, 1]], bool)),
        ("L", np.array([[0, 200]], np.uint8)),
        ("LA", np.array([[[0, 9], [200, 255]]], np.uint8)),
        ("P", None),
        ("I;16", np.array([[0, 200 * 257]], np.uint16)),
        ("RGBA", np.array([[[0, 0, 0, 0], [200, 200, 200, 128]]], np.uint8)),
    ],
)
def test_modes_become_rgb_and_grey(tmp_path: Path, mode: str, values: np.ndarray | None) -> None:
    path = tmp_path / f"{mode.replace(';', '')}.png"
    if mode == "P":
        im = Image.new("P", (2, 1))
        im.putpalette([0, 0, 0, 200, 200, 200])
        im.putpixel((1, 0), 1)
    else:
        im = Image.fromarray(values, mode=None)
        assert im.mode == mode
    im.save(path)
    rgb, grey = read_image_rgb(path), read_mask(path)
    assert (rgb.shape, rgb.dtype, grey.shape, grey.dtype) == ((1, 2, 3), np.uint8, (1, 2), np.uint8)
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert grey[0, 0] == 0
    assert grey[0, 1] > 100
    assert read_image_size(path) == (2, 1)


def test_exif_orientation_is_ignored_by_size_and_pixels(tmp_path: Path) -> None:
    img = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image_size(tmp_path / "rot.jpg") == (30, 10)
    assert read_image_rgb(tmp_path / "rot.jpg").shape == (10, 30, 3)
    assert read_mask(tmp_path / "rot.jpg").shape == (10, 30)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"progressive": True},
        {"optimize": True},
        {"icc_profile": b"x" * 70000},
        {"mode": "L"},
        {"mode": "CMYK"},
    ],
)
def test_jpeg_variants_agree_with_pil(tmp_path: Path, options: dict) -> None:
    # The readers take a JPEG's size from its frame header themselves (fast path); PIL must agree,
    # also behind a 70 KB ICC profile split over several segments.
    options = dict(options)
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    im.convert(options.pop("mode", "RGB")).save(tmp_path / "a.jpg", **options)
    with Image.open(tmp_path / "a.jpg") as pil:
        assert pil.size == (50, 30)
    assert read_image_rgb(tmp_path / "a.jpg").shape == (30, 50, 3)
    assert read_mask(tmp_path / "a.jpg").shape == (30, 50)
    assert read_image_size(tmp_path / "a.jpg") == (50, 30)
