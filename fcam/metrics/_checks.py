"""Entry guards of the metrics, after wsolevaluation's ``check_scoremap_validity`` and
``check_box_convention``: a bad map or box stops at the boundary with a message quoting it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fcam.constants import EVAL_SIZE

__all__ = ["check_boxes", "check_flags", "check_maps", "check_masks"]

_SHAPE = (EVAL_SIZE, EVAL_SIZE)


def check_maps(maps: np.ndarray) -> np.ndarray:
    """Validate a batch of score maps and return it as float64.

    Args:
        maps: (N, 224, 224) float in [0, 1]. The protocol scores float64 maps: float32 input is
            widened first (exactly), so ``uint8(255 * map)`` is computed in float64 as in the reference.

    Returns:
        (N, 224, 224) float64, C-contiguous.

    Raises:
        ValueError: wrong rank or size, a non-float dtype, a NaN, or a value outside [0, 1];
            the message quotes the shape or the offending value and where it is.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.shape[1:] != _SHAPE:
        raise ValueError(f"maps must have shape (N, {EVAL_SIZE}, {EVAL_SIZE}), got {maps.shape}")
    if not np.issubdtype(maps.dtype, np.floating):
        raise ValueError(f"maps must be floating point in [0, 1], got dtype {maps.dtype}")
    maps = np.ascontiguousarray(maps, dtype=np.float64)
    lo, hi = maps.min(), maps.max()  # NaN propagates: two passes and no temporary arrays when valid
    if np.isnan(lo) or np.isnan(hi):
        n, y, x = np.argwhere(np.isnan(maps))[0]
        raise ValueError(f"map {n} has a NaN at (y={y}, x={x}); maps must lie in [0, 1]")
    if lo < 0 or hi > 1:
        n, y, x = np.argwhere((maps < 0) | (maps > 1))[0]
        raise ValueError(f"map {n} has value {maps[n, y, x]!r} at (y={y}, x={x}) outside [0, 1]")
    return maps


def check_boxes(gt_boxes: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """Validate the ground-truth boxes of a batch of ``n`` images.

    Args:
        gt_boxes: ``n`` integer arrays (k_i, 4), k_i >= 1, ``x0, y0, x1, y1`` inclusive in 224-pixel
            coordinates. A coordinate may equal 224: the protocol's rescaling ``int(x * 224 / width)``
            maps a box that ends on the original border there.

    Returns:
        The boxes as (k_i, 4) int64 arrays.

    Raises:
        ValueError: wrong count, shape or dtype, an empty list, a box with x1 < x0 or y1 < y0,
            or a coordinate outside [0, 224]; the message quotes the box.
    """
    if len(gt_boxes) != n:
        raise ValueError(f"expected ground-truth boxes for {n} maps, got {len(gt_boxes)}")
    out = []
    for i, boxes in enumerate(gt_boxes):
        arr = np.asarray(boxes)
        if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
            raise ValueError(f"ground-truth boxes of map {i} must have shape (k >= 1, 4), got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"ground-truth boxes of map {i} must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        flipped = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
        if flipped.any():
            box = arr[np.argmax(flipped)].tolist()
            raise ValueError(f"box {box} of map {i} is not x0 <= x1, y0 <= y1 (convention x0, y0, x1, y1)")
        outside = (arr < 0).any(axis=1) | (arr > EVAL_SIZE).any(axis=1)
        if outside.any():
            box = arr[np.argmax(outside)].tolist()
            raise ValueError(f"box {box} of map {i} lies outside the image [0, {EVAL_SIZE}]")
        out.append(arr)
    return out


def check_masks(masks: np.ndarray, n: int, name: str) -> np.ndarray:
    """Validate (n, 224, 224) boolean masks (ground truth or ignore regions).

    Raises:
        ValueError: wrong shape, or values other than 0/1 (the message quotes one).
    """
    masks = np.asarray(masks)
    if masks.shape != (n, *_SHAPE):
        raise ValueError(f"{name} must have shape ({n}, {EVAL_SIZE}, {EVAL_SIZE}), got {masks.shape}")
    if masks.dtype != np.bool_:
        bad = (masks != 0) & (masks != 1)
        if bad.any():
            raise ValueError(f"{name} must be boolean, found value {masks[tuple(np.argwhere(bad)[0])]!r}")
        masks = masks.astype(bool)
    return masks


def check_flags(flags: np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    """Validate an optional (n,) boolean vector (e.g. whether the label is in the top-k).

    Raises:
        ValueError: wrong shape or non-boolean values.
    """
    if flags is None:
        return None
    flags = np.asarray(flags)
    if flags.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {flags.shape}")
    if flags.dtype != np.bool_:
        if ((flags != 0) & (flags != 1)).any():
            raise ValueError(f"{name} must be boolean, got values {np.unique(flags)[:5].tolist()}")
        flags = flags.astype(bool)
    return flags
