"""Tests of the synthetic benchmark: geometry, the part/body pathology, files, determinism, errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from fcam.data import synthetic
from fcam.data.metadata import load_gt_masks, read_split
from fcam.data.synthetic import MAX_CLASSES, draw_sample, make_synthetic, mask_box, sample_rng
from fcam.errors import ConfigError, DataError

PALETTE = np.array(synthetic._PART_COLOURS, dtype=np.float64)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two inclusive boxes (x0, y0, x1, y1), the protocol's +1 convention."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(iw, 0) * max(ih, 0)

    def area(r: tuple[int, int, int, int]) -> int:
        return (r[2] - r[0] + 1) * (r[3] - r[1] + 1)

    return inter / (area(a) + area(b) - inter)


def test_iou_helper() -> None:
    assert _iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert _iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert _iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0


def _samples(flavour: str, n: int, size: int = 96) -> list[synthetic.SyntheticSample]:
    return [
        draw_sample(sample_rng(7, "val", i), i % MAX_CLASSES, flavour=flavour, size=size)  # type: ignore[arg-type]
        for i in range(n)
    ]


@pytest.mark.parametrize("flavour", ["boxes", "masks"])
def test_part_is_an_eighth_to_a_quarter_of_its_object(flavour: str) -> None:
    counts = []
    for s in _samples(flavour, 120):
        k = len(s.objects)
        counts.append(k)
        assert s.objects.shape == s.parts.shape == (k, 96, 96)
        for obj, part in zip(s.objects, s.parts, strict=True):
            assert not (part & ~obj).any(), "the part sticks out of its body"
            assert 0.12 <= part.sum() / obj.sum() <= 0.24
        # Objects are disjoint, and distractors touch none of them.
        assert s.objects.sum(axis=0).max() == 1
        assert not (s.distractors & s.objects.any(axis=0)).any()
    assert set(counts) == ({1} if flavour == "boxes" else {1, 2, 3})


def test_objects_vary_in_size_position_and_lie_inside_the_image() -> None:
    extents, centres = [], []
    for s in _samples("boxes", 120):
        x0, y0, x1, y1 = mask_box(s.objects[0])
        assert 0 <= x0 <= x1 <= 95
        assert 0 <= y0 <= y1 <= 95
        assert x0 > 0
        assert y0 > 0
        assert x1 < 95
        assert y1 < 95
        extents.append(max(x1 - x0, y1 - y0) + 1)
        centres.append(((x0 + x1) / 2, (y0 + y1) / 2))
    extents_frac = np.array(extents) / 96
    assert extents_frac.min() < 0.4
    assert extents_frac.max() > 0.6
    assert extents_frac.min() >= 0.2
    assert extents_frac.max() <= 0.75
    assert np.ptp(np.array(centres), axis=0).min() > 30


def test_mask_box_is_tight() -> None:
    m = np.zeros((10, 12), bool)
    m[3:6, 2:9] = True
    m[7, 4] = True
    assert mask_box(m) == (2, 3, 8, 7)


def test_part_colour_tells_the_class_body_and_background_do_not() -> None:
    body_hues, bg_hues = [], []
    for s in _samples("boxes", 80):
        obj, part = s.objects[0], s.parts[0]
        inner = cv2.erode(part.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        mean = s.image[inner].astype(np.float64).mean(axis=0)
        # Stripes darken half of their part: compare with the class colour's direction and brightness.
        if synthetic._PART_SHAPES[s.label % 5] != "stripes":
            nearest = int(np.argmin(((PALETTE - mean) ** 2).sum(axis=1)))
            assert nearest == s.label % 8
        hsv = cv2.cvtColor(s.image, cv2.COLOR_RGB2HSV)
        body = cv2.erode((obj & ~part).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        body_hues.append(np.median(hsv[..., 0][body]))
        bg = ~cv2.dilate((obj | s.distractors).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        bg_hues.append(np.median(hsv[..., 0][bg]))
    # One warm body family for all classes, a cool background: colour edges outline the body.
    assert min(body_hues) >= 5
    assert max(body_hues) <= 22
    assert min(bg_hues) >= 35


def test_pathology_part_box_scores_low_object_box_scores_high() -> None:
    part_iou, body_iou = [], []
    for s in _samples("boxes", 150):
        gt = mask_box(s.objects[0])
        part_iou.append(_iou(mask_box(s.parts[0]), gt))
        body_iou.append(_iou(mask_box(s.objects[0]), gt))
    part_iou_arr = np.array(part_iou)
    # A map that covers only the part (what an interpolated CAM does) fails MaxBoxAcc at IoU 0.5;
    # a map covering the body succeeds.
    assert (part_iou_arr >= 0.5).mean() < 0.02
    assert part_iou_arr.mean() < 0.3
    assert np.mean(body_iou) == 1.0


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _make(tmp: Path, flavour: str, seed: int, size: int = 48) -> Path:
    make_synthetic(
        tmp / "data",
        tmp / "metadata",
        flavour=flavour,
        num_classes=3,
        n_train=6,
        n_val=4,
        n_test=5,
        size=size,
        seed=seed,
    )  # type: ignore[arg-type]
    return tmp


@pytest.mark.parametrize("flavour", ["boxes", "masks"])
def test_same_seed_gives_identical_files(tmp_path: Path, flavour: str) -> None:
    a = _digest(_make(tmp_path / "a", flavour, seed=4))
    b = _digest(_make(tmp_path / "b", flavour, seed=4))
    c = _digest(_make(tmp_path / "c", flavour, seed=5))
    assert a == b
    assert a.keys() & c.keys()
    assert any(a[k] != c[k] for k in a.keys() & c.keys() if k.endswith(".png"))
    # Rewriting in place gives the same bytes and leaves no temporary folders.
    again = _digest(_make(tmp_path / "a", flavour, seed=4))
    assert again == a
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.startswith(".")]


def test_box_dataset_files(synth_boxes: tuple[Path, Path]) -> None:
    root, md = synth_boxes
    for split, n in (("train", 12), ("val", 6), ("test", 10)):
        meta = read_split(md / split, root, kind="boxes")
        assert len(meta.image_ids) == n
        assert set(meta.labels.values()) <= set(range(5))
        for i, image_id in enumerate(meta.image_ids):
            image = cv2.imread(str(root / image_id), cv2.IMREAD_UNCHANGED)
            assert image.shape == (64, 64, 3)
            assert meta.sizes[image_id] == (64, 64)
            # Regenerate the sample: the box is the tight box of the object mask, inside the image.
            s = draw_sample(sample_rng(3, split, i), meta.labels[image_id], flavour="boxes", size=64)
            np.testing.assert_array_equal(image[..., ::-1], s.image)
            boxes = meta.boxes[image_id]
            assert boxes.tolist() == [list(mask_box(s.objects[0]))]
            assert (boxes >= 0).all()
            assert (boxes <= 63).all()
    labels = read_split(md / "train", root).labels.values()
    assert sorted(np.bincount(list(labels), minlength=5).tolist()) == [2, 2, 2, 3, 3]  # balanced
    assert not (root / "masks").exists()


def test_mask_dataset_files(synth_masks: tuple[Path, Path]) -> None:
    root, md = synth_masks
    train = read_split(md / "train", root)
    assert train.kind is None
    assert len(train.image_ids) == 12
    assert not (md / "train" / "localization.txt").exists()
    assert not (root / "masks" / "train").exists()
    for split in ("val", "test"):
        meta = read_split(md / split, root, kind="masks")
        fg, ignore = load_gt_masks(meta, meta.image_ids, size=64)
        for i, image_id in enumerate(meta.image_ids):
            s = draw_sample(sample_rng(3, split, i), meta.labels[image_id], flavour="masks", size=64)
            entries = meta.masks[image_id]
            assert len(entries) == len(s.objects)
            assert entries[0][1] is not None
            assert all(ig is None for _, ig in entries[1:])
            for (mask_path, _), obj in zip(entries, s.objects, strict=True):
                np.testing.assert_array_equal(
                    cv2.imread(str(root / mask_path), cv2.IMREAD_GRAYSCALE) > 0, obj
                )
            np.testing.assert_array_equal(fg[i], s.objects.any(axis=0))
            # The ignore band straddles the first object's boundary; its inner half is foreground.
            np.testing.assert_array_equal(ignore[i], s.ignore & ~fg[i])
            assert ignore[i].any()
            assert (s.ignore & s.objects[0]).any()
            band_width = (
                ignore[i].sum() / cv2.Canny(s.objects[0].astype(np.uint8) * 255, 100, 200).astype(bool).sum()
            )
            assert 0.5 < band_width < 3  # a thin band, about r = 1 pixel outside at 64 px


def test_failure_leaves_no_metadata_and_no_partial_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make(tmp_path, "boxes", seed=0)
    calls = {"n": 0}
    real = synthetic.draw_sample

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "draw_sample", flaky)
    before = _digest(tmp_path / "data" / "images" / "train")
    with pytest.raises(RuntimeError, match="killed"):
        _make(tmp_path, "boxes", seed=1)
    # The train split being rewritten has lost its metadata, its old images are untouched, and no
    # temporary folder is left behind.
    assert not (tmp_path / "metadata" / "train").exists()
    assert _digest(tmp_path / "data" / "images" / "train") == before
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_inconsistent_split_is_refused_before_its_metadata_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue #13 item 7: the written files are checked against the metadata before it is renamed
    # into place. A bug that wrote the ignore masks one row short is caught, not scored.
    real = synthetic._write_png

    def short_ignore(path: Path, array: np.ndarray) -> None:
        real(path, array[:-1] if path.name.endswith("_ignore.png") else array)

    monkeypatch.setattr(synthetic, "_write_png", short_ignore)
    with pytest.raises(
        DataError, match=r"localization.txt:1: ignore mask .*_ignore.png is 48x47, but the image"
    ):
        _make(tmp_path, "masks", seed=0)
    assert (tmp_path / "metadata" / "train").is_dir()  # train has no masks: it passed
    assert not (tmp_path / "metadata" / "val").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("flavour", "points"),
        ("num_classes", 1),
        ("num_classes", MAX_CLASSES + 1),
        ("num_classes", 2.5),
        ("n_train", 0),
        ("n_val", -3),
        ("n_test", True),
        ("size", 16),
        ("size", 4096),
        ("seed", -1),
        ("seed", "0"),
    ],
)
def test_bad_knob_is_named(tmp_path: Path, knob: str, value: object) -> None:
    kwargs: dict = {
        "flavour": "boxes",
        "num_classes": 3,
        "n_train": 2,
        "n_val": 2,
        "n_test": 2,
        "size": 48,
        "seed": 0,
    }
    kwargs[knob] = value
    with pytest.raises(ConfigError, match=knob):
        make_synthetic(tmp_path / "d", tmp_path / "m", **kwargs)
    assert not (tmp_path / "d").exists()
    assert not (tmp_path / "m").exists()


def test_draw_sample_rejects_a_bad_label() -> None:
    with pytest.raises(ConfigError, match="label must be in"):
        draw_sample(sample_rng(0, "train", 0), MAX_CLASSES, flavour="boxes", size=64)


def test_every_class_has_its_own_part() -> None:
    pairs = {(k % len(synthetic._PART_COLOURS), synthetic._PART_SHAPES[k % 5]) for k in range(MAX_CLASSES)}
    assert len(pairs) == MAX_CLASSES
    # The stripes part really is striped: dark and bright rows alternate inside it.
    s = next(s for s in _samples("boxes", 10, size=128) if synthetic._PART_SHAPES[s.label % 5] == "stripes")
    rows = s.image[..., 1].astype(float)[s.parts[0].any(axis=1)]
    inside = s.parts[0][s.parts[0].any(axis=1)]
    row_means = np.array([r[m].mean() for r, m in zip(rows, inside, strict=True)])
    assert row_means.max() - row_means.min() > 100
