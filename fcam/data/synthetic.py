"""A synthetic WSOL benchmark that reproduces the failure F-CAM fixes, in seconds on a CPU.

Every image holds one object (``boxes`` flavour, scored like CUB with MaxBoxAcc) or one to three
objects of the same class (``masks`` flavour, scored like OpenImages with PxAP). An object is a
large warm-coloured BODY (an ellipse or a rounded polygon, 40-72% of the image side when alone,
24-50% with two or three) that looks alike in every class, carrying a small discriminative PART
(12-24% of the body's area) whose colour AND shape tell the class. The background is a
cool-coloured gradient with noise texture and clutter, plus body-like distractors that carry no
part. So:

- a classifier can only tell the class from the part, and its interpolated CAM lights up the part
  (a box around it has IoU ~0.15-0.3 with the object's box: low MaxBoxAcc);
- the body is a colour family distinct from the background, so colour edges carry the object's
  extent, which is what the dense CRF loss and size prior of F-CAM exploit to grow the map from
  the part to the whole body.

Class ``k`` has part colour ``_PART_COLOURS[k % 8]`` and part shape ``_PART_SHAPES[k % 5]``; since
8 and 5 are coprime every class below 40 has its own (colour, shape) pair, and two classes that
share one of them differ in the other.

On disk (paths relative to the dataset root, as the metadata says)::

    images/<split>/c<label:02d>/<split>_<index:06d>.png          RGB image, size x size
    masks/<split>/c<label:02d>/<split>_<index:06d>_<k>.png       instance mask k (masks flavour, val/test)
    masks/<split>/c<label:02d>/<split>_<index:06d>_ignore.png    ignore mask (masks flavour, val/test)

The ignore mask of the ``masks`` flavour marks the "unsure" annotation of OpenImages: a thin band
(``2r+1`` pixels, ``r = max(1, round(size / 96))``) straddling the boundary of the image's first
object, where a human annotator would hesitate. As in the protocol, its part inside the object
still counts as foreground; only the outer half is ignored.

The metadata follows wsolevaluation (docs/protocol.md); the train split of the ``masks``
flavour has labels only, like OpenImages.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np

from fcam.constants import SPLITS
from fcam.data.metadata import read_split
from fcam.data.verify import check_split_files
from fcam.errors import ConfigError, DataError
from fcam.io import atomic_dir

__all__ = ["MAX_CLASSES", "SyntheticSample", "draw_sample", "make_synthetic", "mask_box", "sample_rng"]

logger = logging.getLogger(__name__)

Flavour = Literal["boxes", "masks"]

#: Part colours (RGB), saturated and far from the warm body colours.
_PART_COLOURS: Final = (
    (0, 225, 235),  # cyan
    (235, 30, 200),  # magenta
    (140, 245, 30),  # lime
    (30, 60, 235),  # blue
    (250, 250, 250),  # white
    (15, 15, 15),  # black
    (250, 235, 20),  # yellow
    (120, 20, 150),  # purple
)
_PART_SHAPES: Final = ("disc", "square", "triangle", "diamond", "stripes")
#: Area of each part shape with circumradius R is ``_SHAPE_AREA[shape] * R**2``.
_SHAPE_AREA: Final = {
    "disc": math.pi,
    "square": 2.0,
    "triangle": 3.0 * math.sqrt(3.0) / 4.0,
    "diamond": 2.0,
    "stripes": 2.0,
}
#: Every class has a distinct (colour, shape) pair up to lcm(8, 5) classes.
MAX_CLASSES: Final = 40
#: Part area / body area: drawn uniformly in the inner range, accepted in the outer one.
_PART_FRACTION_DRAW: Final = (0.15, 0.21)
_PART_FRACTION_OK: Final = (0.12, 0.24)
#: Longest extent of an object as a fraction of the image side, by number of objects.
_OBJECT_EXTENT: Final = {1: (0.40, 0.72), 2: (0.28, 0.50), 3: (0.24, 0.42)}
_DISTRACTOR_EXTENT: Final = (0.15, 0.35)
_MIN_SIZE, _MAX_SIZE = 32, 1024
_MAX_IMAGES: Final = 1_000_000
_SHIFT: Final = 4  # cv2 drawing with 4 fractional bits: sub-pixel shapes
_ONE: Final = 1 << _SHIFT


@dataclass(frozen=True, eq=False)
class SyntheticSample:
    """One generated image and its ground truth.

    Attributes:
        image: (size, size, 3) uint8 RGB.
        label: class index in [0, num_classes).
        objects: (k, size, size) bool, one body mask per object (part included), k in 1..3.
        parts: (k, size, size) bool, the discriminative part of each object (inside its body).
        distractors: (size, size) bool, union of the part-less body-like distractors.
        ignore: (size, size) bool, the "unsure" band around the first object's boundary.
    """

    image: np.ndarray
    label: int
    objects: np.ndarray
    parts: np.ndarray
    distractors: np.ndarray
    ignore: np.ndarray


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of ``split``: images are independent of the split sizes."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight inclusive box ``(x0, y0, x1, y1)`` of a non-empty (H, W) bool mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    assert ys.size, "mask_box of an empty mask"
    return int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])


def _hsv_colour(rng: np.random.Generator, h: Sequence[int], s: Sequence[int], v: Sequence[int]) -> np.ndarray:
    """A random RGB colour (3,) float32 with OpenCV HSV components drawn in the given ranges."""
    hsv = np.array(
        [[[rng.integers(h[0], h[1] + 1), rng.integers(s[0], s[1] + 1), rng.integers(v[0], v[1] + 1)]]]
    )
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _body_colour(rng: np.random.Generator) -> np.ndarray:
    # Orange to amber: one warm family for every class, far from the cool background.
    return _hsv_colour(rng, (8, 18), (150, 220), (170, 235))


def _background_colour(rng: np.random.Generator) -> np.ndarray:
    # Green to blue, moderately saturated.
    return _hsv_colour(rng, (45, 130), (40, 150), (70, 190))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise (size, size, channels) float32, roughly N(0, 1): bicubic upsampling."""
    low = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    out = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    return out.reshape(size, size, channels)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured, cluttered background (size, size, 3) float32 in about [0, 255]."""
    c0, c1 = _background_colour(rng), _background_colour(rng)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    coords = np.arange(size, dtype=np.float32) / (size - 1)
    ramp = math.cos(theta) * coords[None, :] + math.sin(theta) * coords[:, None]
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    img = c0 + (c1 - c0) * ramp[..., None]
    img *= 1.0 + 0.2 * _smooth_noise(rng, size, int(rng.integers(3, 8)))
    img += 14.0 * _smooth_noise(rng, size, max(4, size // 6), 3)
    # Clutter: lines and ellipses in other cool or grey colours.
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(float(c) for c in _hsv_colour(rng, (40, 140), (0, 160), (50, 220)))
        if rng.random() < 0.5:
            p0 = tuple(int(x) for x in rng.integers(0, size * _ONE, 2))
            p1 = tuple(int(x) for x in rng.integers(0, size * _ONE, 2))
            thickness = int(rng.integers(1, max(2, size // 32) + 1))
            cv2.line(img, p0, p1, colour, thickness, cv2.LINE_AA, _SHIFT)
        else:
            centre = tuple(int(x) for x in rng.integers(0, size * _ONE, 2))
            axes = tuple(int(x) for x in rng.uniform(0.02, 0.12, 2) * size * _ONE)
            cv2.ellipse(
                img, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA, _SHIFT
            )
    return img


def _blob_mask(rng: np.random.Generator, size: int, extent: float, centre: np.ndarray) -> np.ndarray:
    """An ellipse or rounded polygon (size, size) bool with longest extent about ``extent`` px."""
    a = extent / 2.0
    b = a * rng.uniform(0.55, 1.0)
    theta = rng.uniform(0.0, 180.0)
    mask = np.zeros((size, size), np.uint8)
    if rng.random() < 0.5:
        c = tuple(round(x * _ONE) for x in centre)
        cv2.ellipse(mask, c, (round(a * _ONE), round(b * _ONE)), theta, 0, 360, 1, -1, cv2.LINE_8, _SHIFT)
        return mask.astype(bool)
    k = int(rng.integers(5, 9))
    phi = 2.0 * math.pi * (np.arange(k) + rng.uniform(-0.25, 0.25, k)) / k
    radius = rng.uniform(0.8, 1.0, k)
    local = np.stack([a * radius * np.cos(phi), b * radius * np.sin(phi)], axis=1)
    t = math.radians(theta)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    pts = local @ rot.T + centre
    cv2.fillPoly(mask, [np.round(pts * _ONE).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
    # Round the corners: blur the polygon and threshold it again.
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=max(0.8, 0.15 * b))
    return soft > 0.5


def _part_mask(shape: str, size: int, centre: tuple[int, int], radius: float) -> np.ndarray:
    """Part ``shape`` of circumradius ``radius`` px centred on pixel ``centre`` (x, y), (size, size) bool."""
    mask = np.zeros((size, size), np.uint8)
    cx, cy = centre
    if shape == "disc":
        cv2.circle(mask, (cx * _ONE, cy * _ONE), round(radius * _ONE), 1, -1, cv2.LINE_8, _SHIFT)
        return mask.astype(bool)
    if shape == "triangle":  # equilateral, pointing up: invariant under horizontal flips
        angles = np.radians([-90.0, 30.0, 150.0])
    elif shape == "diamond":
        angles = np.radians([-90.0, 0.0, 90.0, 180.0])
    else:  # square and stripes: axis-aligned square
        angles = np.radians([-135.0, -45.0, 45.0, 135.0])
    pts = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    cv2.fillPoly(mask, [np.round(pts * _ONE).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


def _place_part(rng: np.random.Generator, obj: np.ndarray, shape: str) -> np.ndarray | None:
    """A part mask inside ``obj`` covering 12-24% of its area, or None if it does not fit."""
    area = int(obj.sum())
    target = rng.uniform(*_PART_FRACTION_DRAW)
    radius = math.sqrt(target * area / _SHAPE_AREA[shape])
    obj_u8 = obj.astype(np.uint8)
    for _ in range(6):
        r = math.ceil(radius)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        # Pixels whose whole r-disc lies in the body: the part cannot stick out of it.
        inner = np.flatnonzero(cv2.erode(obj_u8, kernel, borderValue=0))
        if inner.size == 0:
            return None
        y, x = divmod(int(inner[rng.integers(inner.size)]), obj.shape[1])
        part = _part_mask(shape, obj.shape[0], (x, y), radius) & obj
        frac = part.sum() / area
        if _PART_FRACTION_OK[0] <= frac <= _PART_FRACTION_OK[1]:
            return part
        radius *= math.sqrt(target / max(frac, 1e-6))  # rasterisation error at small sizes: rescale
    return None


def _paint_body(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray) -> None:
    """Paint a textured, shaded warm body on ``img`` (size, size, 3) float32 where ``mask``."""
    size = img.shape[0]
    colour = _body_colour(rng)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    texture = 1.0 + 0.12 * _smooth_noise(rng, size, max(4, size // 8))[..., 0]
    # Only the mask's bounding box is painted: cheaper than the whole image.
    x0, y0, x1, y1 = mask_box(mask)
    xs = (np.arange(x0, x1 + 1, dtype=np.float32) - size / 2) / size
    ys = (np.arange(y0, y1 + 1, dtype=np.float32) - size / 2) / size
    shade = 1.0 + 0.3 * (math.cos(theta) * xs[None, :] + math.sin(theta) * ys[:, None])
    body = colour * (shade * texture[y0 : y1 + 1, x0 : x1 + 1])[..., None]
    roi = mask[y0 : y1 + 1, x0 : x1 + 1]
    img[y0 : y1 + 1, x0 : x1 + 1][roi] = body[roi]


def _paint_part(img: np.ndarray, part: np.ndarray, label: int, size: int) -> None:
    """Paint the class-specific part pattern of ``label`` where ``part``."""
    colour = np.asarray(_PART_COLOURS[label % len(_PART_COLOURS)], np.float32)
    img[part] = colour
    if _PART_SHAPES[label % len(_PART_SHAPES)] == "stripes":
        ys, _ = np.nonzero(part)
        period = max(1, round((ys.max() - ys.min() + 1) / 6))
        dark = part & ((((np.arange(size) - ys.min()) // period) % 2 == 1)[:, None])
        img[dark] = 0.25 * colour + 20.0


def draw_sample(rng: np.random.Generator, label: int, *, flavour: Flavour, size: int) -> SyntheticSample:
    """Draw one image of class ``label``.

    Args:
        rng: the image's generator (see :func:`sample_rng`); the sample is a function of its state.
        label: class in [0, MAX_CLASSES).
        flavour: ``boxes`` (one object) or ``masks`` (1-3 objects of the same class).
        size: image side in pixels.

    Returns:
        The image and its masks, see :class:`SyntheticSample`.

    Raises:
        ConfigError: ``label`` is out of range.
    """
    if not 0 <= label < MAX_CLASSES:
        raise ConfigError(f"synthetic dataset: label must be in [0, {MAX_CLASSES}), got {label}")
    shape = _PART_SHAPES[label % len(_PART_SHAPES)]
    want = 1 if flavour == "boxes" else int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    lo, hi = _OBJECT_EXTENT[want]
    gap = max(2, size // 32)  # background between objects, so each keeps its own colour edges
    gap_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1))
    objects: list[np.ndarray] = []
    parts: list[np.ndarray] = []
    taken = np.zeros((size, size), bool)
    for attempt in range(200):
        if len(objects) == want or (attempt >= 40 and objects):
            break
        extent = rng.uniform(lo, hi) * size
        margin = extent / 2.0 + 1.0
        centre = rng.uniform(margin, size - 1 - margin, 2)
        obj = _blob_mask(rng, size, extent, centre)
        if obj.sum() < 16 or (obj & taken).any():
            continue
        part = _place_part(rng, obj, shape)
        if part is None:
            continue
        objects.append(obj)
        parts.append(part)
        taken |= cv2.dilate(obj.astype(np.uint8), gap_kernel).astype(bool)
    assert objects, "no object could be placed"

    img = _background(rng, size)
    distractors = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(0, 3))):
        for _try in range(10):
            extent = rng.uniform(*_DISTRACTOR_EXTENT) * size
            d = _blob_mask(rng, size, extent, rng.uniform(0, size - 1, 2))
            if d.any() and not (d & taken).any():
                _paint_body(rng, img, d)
                distractors |= d
                break
    for obj, part in zip(objects, parts, strict=True):
        _paint_body(rng, img, obj)
        _paint_part(img, part, label, size)

    # Soften the aliased edges a little and add sensor noise.
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=max(0.4, size / 192))
    img += 3.0 * rng.standard_normal(img.shape, dtype=np.float32)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    r = max(1, round(size / 96))
    band = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    first = objects[0].astype(np.uint8)
    ignore = cv2.dilate(first, band).astype(bool) & ~cv2.erode(first, band, borderValue=0).astype(bool)
    return SyntheticSample(image, label, np.stack(objects), np.stack(parts), distractors, ignore)


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"synthetic dataset: {name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or grey (H, W) uint8 array as PNG."""
    data = array[..., ::-1] if array.ndim == 3 else array  # cv2 wants BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(data))
    if not ok:
        raise DataError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def _write_split(
    root: Path,
    metadata_root: Path,
    split: str,
    n: int,
    *,
    flavour: Flavour,
    num_classes: int,
    size: int,
    seed: int,
) -> None:
    split_index = SPLITS.index(split)
    # Balanced classes in a seeded order.
    labels = np.random.default_rng([seed, split_index]).permutation(np.arange(n) % num_classes)
    with_masks = flavour == "masks" and split != "train"
    # Stale metadata first: while this split is rewritten no metadata points at it.
    shutil.rmtree(metadata_root / split, ignore_errors=True)
    if not with_masks:
        shutil.rmtree(root / "masks" / split, ignore_errors=True)
    ids: list[str] = []
    loc: list[str] = []
    with contextlib.ExitStack() as stack:
        img_dir = stack.enter_context(atomic_dir(root / "images" / split))
        mask_dir = stack.enter_context(atomic_dir(root / "masks" / split)) if with_masks else None
        for i, label in enumerate(labels.tolist()):
            sample = draw_sample(sample_rng(seed, split, i), label, flavour=flavour, size=size)
            folder, stem = f"c{label:02d}", f"{split}_{i:06d}"
            rel = f"{split}/{folder}/{stem}"
            (img_dir / folder).mkdir(exist_ok=True)
            _write_png(img_dir / folder / f"{stem}.png", sample.image)
            image_id = f"images/{rel}.png"
            ids.append(image_id)
            if flavour == "boxes":
                x0, y0, x1, y1 = mask_box(sample.objects[0])
                loc.append(f"{image_id},{x0},{y0},{x1},{y1}")
            elif mask_dir is not None:
                (mask_dir / folder).mkdir(exist_ok=True)
                _write_png(mask_dir / folder / f"{stem}_ignore.png", sample.ignore * np.uint8(255))
                for k, obj in enumerate(sample.objects):
                    _write_png(mask_dir / folder / f"{stem}_{k}.png", obj * np.uint8(255))
                    ignore = f"masks/{rel}_ignore.png" if k == 0 else ""
                    loc.append(f"{image_id},masks/{rel}_{k}.png,{ignore}")
    with atomic_dir(metadata_root / split) as md:
        _write_lines(md / "image_ids.txt", ids)
        _write_lines(md / "class_labels.txt", [f"{p},{c}" for p, c in zip(ids, labels.tolist(), strict=True)])
        _write_lines(md / "image_sizes.txt", [f"{p},{size},{size}" for p in ids])
        if loc:
            _write_lines(md / "localization.txt", loc)
        # The files written must agree with the metadata before it is renamed into place.
        check_split_files(read_split(md, root), md)
    logger.info("synthetic %s/%s: %d images written under %s", flavour, split, n, root)


def make_synthetic(
    root: Path,
    metadata_root: Path,
    *,
    flavour: Flavour,
    num_classes: int,
    n_train: int,
    n_val: int,
    n_test: int,
    size: int,
    seed: int,
) -> None:
    """Generate the synthetic benchmark: PNG images under ``root``, metadata under ``metadata_root``.

    Writes ``root/images/<split>/...``, for the ``masks`` flavour ``root/masks/<split>/...`` (val and
    test), and ``metadata_root/<split>/{image_ids,class_labels,image_sizes,localization}.txt``. Each
    folder is written atomically, and a split's metadata is removed before its images are rewritten
    and written last, so a killed run never leaves metadata pointing at half-written images;
    before it is renamed into place, a split's metadata is checked against the files written
    (:func:`fcam.data.verify.check_split_files`: image sizes, boxes, mask sizes).
    The output is a function of the arguments: the same seed gives byte-identical files.

    Args:
        root: dataset root (``data/<ds>``); paths in the metadata are relative to it.
        metadata_root: ``data/metadata/<ds>``.
        flavour: ``boxes`` (one object per image, a box per image in every split, like CUB) or
            ``masks`` (1-3 objects, instance and ignore masks in val/test, labels only in train,
            like OpenImages).
        num_classes: number of classes, in [2, 40].
        n_train: number of train images, in [1, 1e6]; likewise ``n_val`` and ``n_test``.
        n_val: number of validation images.
        n_test: number of test images.
        size: image side in pixels, in [32, 1024] (64 or more keeps the part shapes legible).
        seed: non-negative integer seed.

    Raises:
        ConfigError: a knob is of the wrong type or out of range (the message names it).
        DataError: the files written disagree with the metadata (a bug; nothing of that split's
            metadata is left behind).
    """
    if flavour not in ("boxes", "masks"):
        raise ConfigError(f"synthetic dataset: flavour must be 'boxes' or 'masks', got {flavour!r}")
    num_classes = _check_int("num_classes", num_classes, 2, MAX_CLASSES)
    counts = {
        split: _check_int(f"n_{split}", n, 1, _MAX_IMAGES)
        for split, n in zip(SPLITS, (n_train, n_val, n_test), strict=True)
    }
    size = _check_int("size", size, _MIN_SIZE, _MAX_SIZE)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    root, metadata_root = Path(root), Path(metadata_root)
    for split, n in counts.items():
        _write_split(
            root, metadata_root, split, n, flavour=flavour, num_classes=num_classes, size=size, seed=seed
        )
