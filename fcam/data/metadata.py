"""Reader of the wsolevaluation metadata of one split, with every line checked.

A split lives in ``metadata/<ds>/<split>/``; every path in it is relative to the dataset root
``data/<ds>/`` (docs/protocol.md). The files, with a one-line example each:

``image_ids.txt`` (required), ``<path>``, one image per line::

    001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg

``class_labels.txt`` (required), ``<path>,<label>``, label an integer from 0, one line per image::

    001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg,0

``image_sizes.txt`` (required for box localisation), ``<path>,<width>,<height>`` of the original image::

    001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg,500,375

``localization.txt`` for boxes, ``<path>,<x0>,<y0>,<x1>,<y1>``, inclusive pixel coordinates in the
original image, one line per box (several boxes per image allowed)::

    001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg,60,27,385,331

``localization.txt`` for masks, ``<path>,<mask_path>,<ignore_path>``, one line per instance mask;
the ignore mask is named on the image's first line, and left empty on its other lines::

    val/01226z/3dda685b28b1c1d8.jpg,val/01226z/3dda685b28b1c1d8_m01226z_a3c3a490.png,val/01226z/3dda685b28b1c1d8_ignore.png
    val/01226z/3dda685b28b1c1d8.jpg,val/01226z/3dda685b28b1c1d8_m01226z_cde75368.png,

Blank lines are skipped. Any other departure raises one :class:`fcam.errors.DataError` naming the
file, the line number and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, Literal

import cv2
import numpy as np

from fcam.constants import EVAL_SIZE
from fcam.data.images import read_mask
from fcam.errors import ConfigError, DataError

__all__ = ["SplitMetadata", "gt_boxes_at", "load_gt_masks", "read_split"]

Kind = Literal["boxes", "masks"]

_FORMATS: Final = {
    "image_ids.txt": "<path>",
    "class_labels.txt": "<path>,<label>",
    "image_sizes.txt": "<path>,<width>,<height>",
    "boxes": "<path>,<x0>,<y0>,<x1>,<y1>",
    "masks": "<path>,<mask_path>,<ignore_path>",
}
_UINT: Final = re.compile(r"[0-9]+")
_INT: Final = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, eq=False)
class SplitMetadata:
    """The metadata of one split.

    Attributes:
        root: dataset root; ``root / image_id`` is the image file.
        image_ids: image paths (relative to ``root``) in the order of ``image_ids.txt``.
        labels: image id -> class index in [0, num_classes).
        sizes: image id -> original (width, height); empty if ``image_sizes.txt`` is absent.
        boxes: image id -> (k, 4) int64 boxes ``x0, y0, x1, y1``, inclusive pixel coordinates in the
            original image; empty unless the localisation is boxes.
        masks: image id -> [(mask path, ignore path or None), ...] in file order; the ignore path is
            only ever set on the first entry. Empty unless the localisation is masks.
    """

    root: Path
    image_ids: tuple[str, ...]
    labels: dict[str, int]
    sizes: dict[str, tuple[int, int]]
    boxes: dict[str, np.ndarray]
    masks: dict[str, list[tuple[str, str | None]]]

    @property
    def num_classes(self) -> int:
        """One more than the largest label (a split may lack some classes)."""
        return max(self.labels.values()) + 1

    @property
    def kind(self) -> Kind | None:
        """``boxes``, ``masks``, or None for a split with labels only."""
        if self.boxes:
            return "boxes"
        return "masks" if self.masks else None

    def path(self, relative: str) -> Path:
        """Absolute path of an image or mask named in the metadata."""
        return self.root / relative


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank stripped lines of ``path`` with their 1-based numbers."""
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read metadata ({exc})") from exc
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


class _LineError:
    """Builds the DataError of one metadata line."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt

    def __call__(self, lineno: int, line: str, problem: str) -> DataError:
        shown = line if len(line) <= 200 else line[:200] + "..."
        return DataError(f"{self.path}:{lineno}: {problem}; expected '{self.fmt}', got {shown!r}")


def _fields(err: _LineError, lineno: int, line: str, count: int) -> list[str]:
    fields = line.split(",")
    if len(fields) != count:
        raise err(lineno, line, f"{len(fields)} comma-separated fields instead of {count}")
    return fields


def _int(err: _LineError, lineno: int, line: str, text: str, name: str, *, signed: bool = False) -> int:
    if not (_INT if signed else _UINT).fullmatch(text.strip()):
        raise err(lineno, line, f"{name} {text!r} is not {'an' if signed else 'a non-negative'} integer")
    return int(text)


def _check_relative(err: _LineError, lineno: int, line: str, rel: str) -> None:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts:
        raise err(lineno, line, f"path {rel!r} must be non-empty, relative and inside the dataset root")


def _read_keyed(
    path: Path, known: dict[str, int], count: int, fmt: str
) -> tuple[_LineError, dict[str, tuple[int, str, list[str]]]]:
    """Lines of a ``<path>,...`` file keyed by image id, each image at most once and known."""
    err = _LineError(path, fmt)
    out: dict[str, tuple[int, str, list[str]]] = {}
    for lineno, line in _lines(path):
        fields = _fields(err, lineno, line, count)
        image_id = fields[0]
        if image_id not in known:
            raise err(lineno, line, f"image {image_id!r} is not in image_ids.txt")
        if image_id in out:
            raise err(lineno, line, f"image {image_id!r} already appears on line {out[image_id][0]}")
        out[image_id] = (lineno, line, fields[1:])
    return err, out


def _require_all(path: Path, ids_path: Path, ids: dict[str, int], have: dict) -> None:
    for image_id, lineno in ids.items():
        if image_id not in have:
            raise DataError(f"{path}: no line for image {image_id!r} ({ids_path.name} line {lineno})")


def _read_boxes(path: Path, ids: dict[str, int], sizes: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    err = _LineError(path, _FORMATS["boxes"])
    boxes: dict[str, list[list[int]]] = {}
    for lineno, line in _lines(path):
        image_id, *coords = _fields(err, lineno, line, 5)
        if image_id not in ids:
            raise err(lineno, line, f"image {image_id!r} is not in image_ids.txt")
        x0, y0, x1, y1 = (
            _int(err, lineno, line, c, n, signed=True)
            for c, n in zip(coords, ("x0", "y0", "x1", "y1"), strict=True)
        )
        w, h = sizes[image_id]
        if x1 < x0 or y1 < y0:
            raise err(lineno, line, "box has x1 < x0 or y1 < y0")
        # x1 == w is tolerated: CUB's float (x, y, width, height) boxes can end on the border.
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise err(lineno, line, f"box lies outside the {w}x{h} image (image_sizes.txt)")
        boxes.setdefault(image_id, []).append([x0, y0, x1, y1])
    return {k: np.asarray(v, dtype=np.int64) for k, v in boxes.items()}


def _read_masks(path: Path, ids: dict[str, int], root: Path, check_files: bool) -> dict[str, list]:
    err = _LineError(path, _FORMATS["masks"])
    masks: dict[str, list[tuple[str, str | None]]] = {}
    for lineno, line in _lines(path):
        image_id, mask_path, ignore_path = _fields(err, lineno, line, 3)
        if image_id not in ids:
            raise err(lineno, line, f"image {image_id!r} is not in image_ids.txt")
        _check_relative(err, lineno, line, mask_path)
        first = image_id not in masks
        if ignore_path and not first:
            raise err(lineno, line, "the ignore mask must be named on the image's first line only")
        if ignore_path:
            _check_relative(err, lineno, line, ignore_path)
        if check_files:
            for rel in (mask_path, ignore_path):
                if rel and not (root / rel).is_file():
                    raise err(lineno, line, f"mask file {root / rel} does not exist")
        masks.setdefault(image_id, []).append((mask_path, ignore_path or None))
    return masks


def _infer_kind(path: Path) -> Kind:
    """``boxes`` or ``masks`` from the field count of the first line of ``localization.txt``."""
    lines = _lines(path)
    if not lines:
        raise DataError(f"{path}: no localisation lines")
    lineno, line = lines[0]
    count = len(line.split(","))
    if count not in (3, 5):
        fmt = f"{_FORMATS['boxes']}' or '{_FORMATS['masks']}"
        raise _LineError(path, fmt)(lineno, line, f"{count} comma-separated fields instead of 5 or 3")
    return "boxes" if count == 5 else "masks"


def read_split(
    metadata_dir: Path, dataset_root: Path, *, kind: Kind | None = None, check_files: bool = True
) -> SplitMetadata:
    """Read and check the metadata of one split (formats in the module docstring).

    Args:
        metadata_dir: ``metadata/<ds>/<split>``.
        dataset_root: ``data/<ds>``, the folder the metadata paths are relative to.
        kind: the localisation expected: ``boxes`` or ``masks`` require ``localization.txt`` in that
            format; None reads it if present (format told by its field count) and accepts labels only.
        check_files: also check that every image and mask file exists.

    Returns:
        The split's metadata. With localisation, every image has at least one box or mask.

    Raises:
        DataError: a file is missing or malformed; the message names the file and line.
        ConfigError: ``kind`` is not one of the above.
    """
    metadata_dir, dataset_root = Path(metadata_dir), Path(dataset_root)
    if kind not in (None, "boxes", "masks"):
        raise ConfigError(f"read_split: kind must be 'boxes', 'masks' or None, got {kind!r}")

    ids_path = metadata_dir / "image_ids.txt"
    ids_err = _LineError(ids_path, _FORMATS["image_ids.txt"])
    ids: dict[str, int] = {}
    for lineno, line in _lines(ids_path):
        _fields(ids_err, lineno, line, 1)
        _check_relative(ids_err, lineno, line, line)
        if line in ids:
            raise ids_err(lineno, line, f"image already listed on line {ids[line]}")
        if check_files and not (dataset_root / line).is_file():
            raise ids_err(lineno, line, f"image file {dataset_root / line} does not exist")
        ids[line] = lineno
    if not ids:
        raise DataError(f"{ids_path}: no image ids")

    labels_path = metadata_dir / "class_labels.txt"
    err, rows = _read_keyed(labels_path, ids, 2, _FORMATS["class_labels.txt"])
    labels = {k: _int(err, n, line, f[0], "label") for k, (n, line, f) in rows.items()}
    _require_all(labels_path, ids_path, ids, labels)

    loc_path = metadata_dir / "localization.txt"
    if kind is None and loc_path.is_file():
        kind = _infer_kind(loc_path)

    sizes_path = metadata_dir / "image_sizes.txt"
    sizes: dict[str, tuple[int, int]] = {}
    if kind == "boxes" or sizes_path.is_file():
        err, rows = _read_keyed(sizes_path, ids, 3, _FORMATS["image_sizes.txt"])
        for image_id, (n, line, (ws, hs)) in rows.items():
            w, h = _int(err, n, line, ws, "width"), _int(err, n, line, hs, "height")
            if w == 0 or h == 0:
                raise err(n, line, "width and height must be positive")
            sizes[image_id] = (w, h)
        _require_all(sizes_path, ids_path, ids, sizes)

    boxes: dict[str, np.ndarray] = {}
    masks: dict[str, list[tuple[str, str | None]]] = {}
    if kind == "boxes":
        boxes = _read_boxes(loc_path, ids, sizes)
        _require_all(loc_path, ids_path, ids, boxes)
    elif kind == "masks":
        masks = _read_masks(loc_path, ids, dataset_root, check_files)
        _require_all(loc_path, ids_path, ids, masks)
    return SplitMetadata(dataset_root, tuple(ids), labels, sizes, boxes, masks)


def gt_boxes_at(meta: SplitMetadata, image_id: str, size: int = EVAL_SIZE) -> np.ndarray:
    """Ground-truth boxes of one image rescaled to a ``size`` x ``size`` image, as the protocol does.

    Each coordinate becomes ``int(x * size / width)`` (``y`` with the height): truncation, the
    rescaling of wsolevaluation, with its floating-point operations in the same order.

    Args:
        meta: metadata with boxes.
        image_id: an image of the split.
        size: side of the resized image.

    Returns:
        (k, 4) int64 boxes ``x0, y0, x1, y1``, inclusive, in [0, size] (``size`` only for a box that
        ends on the original border, see :func:`read_split`).

    Raises:
        DataError: the image has no boxes.
    """
    if image_id not in meta.boxes:
        raise DataError(f"{meta.root}: no ground-truth box for image {image_id!r}")
    w, h = meta.sizes[image_id]
    scale = np.array([w, h, w, h], dtype=np.float64)
    return (meta.boxes[image_id].astype(np.float64) * size / scale).astype(np.int64)


def _read_mask(path: Path, size: int) -> np.ndarray:
    """A mask file as (size, size) bool: nearest resizing, then > 0.5, like wsolevaluation."""
    mask = read_mask(path)
    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST) > 0.5


def load_gt_masks(
    meta: SplitMetadata, image_ids: Sequence[str], size: int = EVAL_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth foreground and ignore masks at ``size`` x ``size``, as the protocol builds them.

    Args:
        meta: metadata with masks.
        image_ids: N images of the split.
        size: side of the output masks.

    Returns:
        ``(foreground, ignore)``, both (N, size, size) bool. Foreground is the union of the
        instance masks; ignore is the ignore mask minus the foreground (all False when the image
        has no ignore mask), as in wsolevaluation's ``get_mask``.

    Raises:
        DataError: an image has no masks, or a mask file cannot be read.
    """
    fg = np.zeros((len(image_ids), size, size), dtype=bool)
    ignore = np.zeros_like(fg)
    for i, image_id in enumerate(image_ids):
        entries = meta.masks.get(image_id)
        if not entries:
            raise DataError(f"{meta.root}: no ground-truth mask for image {image_id!r}")
        fg[i] = np.stack([_read_mask(meta.path(m), size) for m, _ in entries]).any(axis=0)
        ignore_path = entries[0][1]
        if ignore_path is not None:
            ignore[i] = _read_mask(meta.path(ignore_path), size)
    ignore &= ~fg
    return fg, ignore
