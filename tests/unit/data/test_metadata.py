"""Tests of the metadata reader on the hand-made tiny dataset (tests/data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fcam.data.metadata import gt_boxes_at, load_gt_masks, read_split
from fcam.errors import ConfigError, DataError

IDS = ("images/a.png", "images/b.png", "images/c.png")


def _edit(md: Path, name: str, lineno: int, new: str | None) -> None:
    """Replace (or delete with None) line ``lineno`` (1-based) of ``md/name``; past the end appends."""
    lines = (md / name).read_text().splitlines()
    if lineno > len(lines):
        assert new is not None
        lines.append(new)
    elif new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    (md / name).write_text("\n".join(lines) + "\n")


def test_read_boxes(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    meta = read_split(tiny_split("boxes"), tiny_root, kind="boxes")
    assert meta.image_ids == IDS
    assert meta.labels == {"images/a.png": 0, "images/b.png": 1, "images/c.png": 2}
    assert meta.num_classes == 3
    assert meta.kind == "boxes"
    assert meta.sizes == {"images/a.png": (8, 8), "images/b.png": (10, 6), "images/c.png": (8, 8)}
    np.testing.assert_array_equal(meta.boxes["images/a.png"], [[1, 1, 3, 2], [4, 5, 6, 6]])
    np.testing.assert_array_equal(meta.boxes["images/b.png"], [[1, 2, 9, 5]])
    assert meta.boxes["images/b.png"].dtype == np.int64
    assert meta.masks == {}
    assert meta.path("images/a.png") == tiny_root / "images/a.png"


def test_read_masks_and_inferred_kind(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    md = tiny_split("masks")
    for kind in ("masks", None):
        meta = read_split(md, tiny_root, kind=kind)
        assert meta.kind == "masks"
        assert meta.boxes == {}
        assert meta.masks["images/a.png"] == [
            ("masks/a_0.png", "masks/a_ignore.png"),
            ("masks/a_1.png", None),
        ]
        assert meta.masks["images/b.png"] == [("masks/b_0.png", None)]
    assert read_split(tiny_split("boxes"), tiny_root).kind == "boxes"


def test_labels_only_split(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    md = tiny_split("masks")
    (md / "localization.txt").unlink()
    (md / "image_sizes.txt").unlink()
    meta = read_split(md, tiny_root)
    assert meta.kind is None
    assert meta.sizes == {}
    assert meta.boxes == {}
    assert meta.masks == {}
    with pytest.raises(DataError, match=r"localization\.txt: metadata file not found"):
        read_split(md, tiny_root, kind="masks")


def test_blank_lines_and_crlf_are_accepted(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    md = tiny_split("boxes")
    text = (md / "class_labels.txt").read_text()
    (md / "class_labels.txt").write_text("\n" + text.replace("\n", "\r\n") + "\n\n")
    assert read_split(md, tiny_root, kind="boxes").labels["images/c.png"] == 2


def test_check_files_false_skips_existence(tiny_split: Callable[[str], Path], tmp_path: Path) -> None:
    meta = read_split(tiny_split("masks"), tmp_path / "nowhere", kind="masks", check_files=False)
    assert len(meta.image_ids) == 3
    with pytest.raises(DataError, match=r"image_ids\.txt:1: image file .*a\.png does not exist"):
        read_split(tiny_split("boxes"), tmp_path / "nowhere", kind="boxes")


# (kind, file, line to edit, new text or None to delete, expected line in the message, text in it)
BAD = [
    ("boxes", "image_ids.txt", 3, "images/missing.png", 3, "does not exist"),
    ("boxes", "image_ids.txt", 4, "images/a.png", 4, "already listed on line 1"),
    ("boxes", "image_ids.txt", 2, "images/b.png,1", 2, "2 comma-separated fields instead of 1"),
    ("boxes", "image_ids.txt", 2, "/abs/b.png", 2, "relative"),
    ("boxes", "image_ids.txt", 2, "../b.png", 2, "relative"),
    ("boxes", "class_labels.txt", 2, "images/b.png,1,2", 2, "3 comma-separated fields instead of 2"),
    ("boxes", "class_labels.txt", 2, "images/b.png,one", 2, "label 'one' is not a non-negative integer"),
    ("boxes", "class_labels.txt", 2, "images/b.png,-1", 2, "is not a non-negative integer"),
    ("boxes", "class_labels.txt", 2, "images/b.png,1.0", 2, "is not a non-negative integer"),
    ("boxes", "class_labels.txt", 4, "images/z.png,0", 4, "'images/z.png' is not in image_ids.txt"),
    ("boxes", "class_labels.txt", 4, "images/a.png,1", 4, "already appears on line 1"),
    ("boxes", "image_sizes.txt", 2, "images/b.png,-10,6", 2, "width '-10' is not a non-negative integer"),
    ("boxes", "image_sizes.txt", 2, "images/b.png,10,0", 2, "width and height must be positive"),
    ("boxes", "image_sizes.txt", 2, "images/b.png,10", 2, "2 comma-separated fields instead of 3"),
    ("boxes", "localization.txt", 3, "images/b.png,1,2,11,5", 3, "outside the 10x6 image"),
    ("boxes", "localization.txt", 3, "images/b.png,-1,2,9,5", 3, "outside the 10x6 image"),
    ("boxes", "localization.txt", 3, "images/b.png,1,2,9,7", 3, "outside the 10x6 image"),
    ("boxes", "localization.txt", 3, "images/b.png,5,2,4,5", 3, "x1 < x0"),
    ("boxes", "localization.txt", 3, "images/b.png,1,4,9,3", 3, "y1 < y0"),
    ("boxes", "localization.txt", 3, "images/b.png,1,2,9.5,5", 3, "x1 '9.5' is not an integer"),
    ("boxes", "localization.txt", 3, "images/b.png,1,2,9", 3, "4 comma-separated fields instead of 5"),
    ("boxes", "localization.txt", 5, "images/z.png,1,1,2,2", 5, "'images/z.png' is not in image_ids.txt"),
    ("masks", "localization.txt", 2, "images/a.png,masks/nothere.png,", 2, "does not exist"),
    ("masks", "localization.txt", 1, "images/a.png,masks/a_0.png,masks/nothere.png", 1, "does not exist"),
    ("masks", "localization.txt", 2, "images/a.png,masks/a_1.png,masks/a_ignore.png", 2, "first line only"),
    ("masks", "localization.txt", 2, "images/a.png,,", 2, "must be non-empty"),
    (
        "masks",
        "localization.txt",
        2,
        "images/a.png,masks/a_1.png",
        2,
        "2 comma-separated fields instead of 3",
    ),
    (
        "masks",
        "localization.txt",
        5,
        "images/q.png,masks/a_1.png,",
        5,
        "'images/q.png' is not in image_ids.txt",
    ),
]


@pytest.mark.parametrize(("kind", "name", "lineno", "new", "at", "problem"), BAD)
def test_bad_line_names_file_and_line(
    tiny_split: Callable[[str], Path],
    tiny_root: Path,
    kind: str,
    name: str,
    lineno: int,
    new: str,
    at: int,
    problem: str,
) -> None:
    md = tiny_split(kind)
    _edit(md, name, lineno, new)
    with pytest.raises(DataError) as info:
        read_split(md, tiny_root, kind=kind)  # type: ignore[arg-type]
    message = str(info.value)
    assert f"{md / name}:{at}:" in message
    assert problem in message
    assert "expected '" in message  # the format is spelt out


@pytest.mark.parametrize(
    ("kind", "name", "lineno", "missing"),
    [
        ("boxes", "class_labels.txt", 2, "images/b.png"),
        ("boxes", "image_sizes.txt", 3, "images/c.png"),
        ("boxes", "localization.txt", 3, "images/b.png"),
        ("masks", "localization.txt", 3, "images/b.png"),
    ],
)
def test_image_without_line(
    tiny_split: Callable[[str], Path], tiny_root: Path, kind: str, name: str, lineno: int, missing: str
) -> None:
    md = tiny_split(kind)
    _edit(md, name, lineno, None)
    with pytest.raises(DataError) as info:
        read_split(md, tiny_root, kind=kind)  # type: ignore[arg-type]
    message = str(info.value)
    assert str(md / name) in message
    assert f"no line for image '{missing}'" in message
    assert f"image_ids.txt line {IDS.index(missing) + 1}" in message


@pytest.mark.parametrize("name", ["image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"])
def test_missing_file(tiny_split: Callable[[str], Path], tiny_root: Path, name: str) -> None:
    md = tiny_split("boxes")
    (md / name).unlink()
    with pytest.raises(DataError, match=rf"{name}: metadata file not found"):
        read_split(md, tiny_root, kind="boxes")


def test_empty_and_undecodable_files(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    md = tiny_split("boxes")
    (md / "image_ids.txt").write_text("\n\n")
    with pytest.raises(DataError, match=r"image_ids\.txt: no image ids"):
        read_split(md, tiny_root)
    (md / "image_ids.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match=r"image_ids\.txt: cannot read metadata"):
        read_split(md, tiny_root)


def test_unknown_localisation_format(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    md = tiny_split("boxes")
    _edit(md, "localization.txt", 1, "images/a.png,1,1,3")
    with pytest.raises(DataError, match=r"localization\.txt:1: 4 comma-separated fields instead of 5 or 3"):
        read_split(md, tiny_root)
    (md / "localization.txt").write_text("\n")
    with pytest.raises(DataError, match=r"localization\.txt: no localisation lines"):
        read_split(md, tiny_root)


def test_wrong_kind_is_reported_on_first_line(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    md = tiny_split("masks")
    with pytest.raises(ConfigError, match="kind must be"):
        read_split(md, tiny_root, kind="points")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"localization\.txt:1: 3 comma-separated fields instead of 5"):
        read_split(md, tiny_root, kind="boxes")


def test_gt_boxes_at_truncates(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    meta = read_split(tiny_split("boxes"), tiny_root, kind="boxes")
    # int(x * 224 / w): a (8x8) scales exactly by 28;
    # b (10x6): 22.4 -> 22, 74.67 -> 74, 201.6 -> 201, 186.67 -> 186.
    np.testing.assert_array_equal(gt_boxes_at(meta, "images/a.png"), [[28, 28, 84, 56], [112, 140, 168, 168]])
    np.testing.assert_array_equal(gt_boxes_at(meta, "images/b.png"), [[22, 74, 201, 186]])
    np.testing.assert_array_equal(gt_boxes_at(meta, "images/b.png", size=100), [[10, 33, 90, 83]])
    # A box ending on the border (x1 = width, tolerated) maps to the size itself.
    np.testing.assert_array_equal(gt_boxes_at(meta, "images/c.png"), [[0, 0, 224, 224]])
    assert gt_boxes_at(meta, "images/b.png").dtype == np.int64
    with pytest.raises(DataError, match=r"no ground-truth box for image 'images/zz\.png'"):
        gt_boxes_at(meta, "images/zz.png")


def test_load_gt_masks_union_and_ignore(tiny_split: Callable[[str], Path], tiny_root: Path) -> None:
    meta = read_split(tiny_split("masks"), tiny_root, kind="masks")
    fg, ignore = load_gt_masks(meta, ["images/a.png", "images/c.png"], size=16)
    assert fg.shape == ignore.shape == (2, 16, 16)
    assert fg.dtype == ignore.dtype == np.bool_
    # a: 8x8 masks doubled by nearest resizing. a_1 holds value 1, still > 0.5.
    want_fg = np.zeros((16, 16), bool)
    want_fg[2:6, 2:8] = True  # a_0: rows 1-2, cols 1-3
    want_fg[10:14, 8:14] = True  # a_1: rows 5-6, cols 4-6
    want_ignore = np.zeros((16, 16), bool)
    want_ignore[0:8, 0:10] = True  # a_ignore: rows 0-3, cols 0-4 ...
    want_ignore &= ~want_fg  # ... minus the foreground
    np.testing.assert_array_equal(fg[0], want_fg)
    np.testing.assert_array_equal(ignore[0], want_ignore)
    # c: empty object, everything else ignored.
    assert not fg[1].any()
    assert ignore[1].all()
    # b (10x6 -> 20x20): no ignore mask; rows 2-4 -> 7-16 (floor(y * 0.3)), cols 1-8 -> 2-17.
    fg, ignore = load_gt_masks(meta, ["images/b.png"], size=20)
    want = np.zeros((20, 20), bool)
    want[7:17, 2:18] = True
    np.testing.assert_array_equal(fg[0], want)
    assert not ignore.any()


def test_load_gt_masks_errors(tiny_split: Callable[[str], Path], tiny_root: Path, tmp_path: Path) -> None:
    md = tiny_split("masks")
    meta = read_split(md, tiny_root, kind="masks")
    with pytest.raises(DataError, match=r"no ground-truth mask for image 'images/zz\.png'"):
        load_gt_masks(meta, ["images/zz.png"])
    broken = read_split(md, tmp_path, kind="masks", check_files=False)
    with pytest.raises(DataError, match=r"a_0\.png: cannot read image \(file not found\)"):
        load_gt_masks(broken, ["images/a.png"])
    fg, ignore = load_gt_masks(meta, [])
    assert fg.shape == ignore.shape == (0, 224, 224)
