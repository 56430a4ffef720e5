"""Seeded score maps for the metrics tests: random families that stress the sweep (blobs,
background speckle, holes, nested components, plateaus, few grey levels, noise)."""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 224


def blank() -> np.ndarray:
    """(224, 224) float64 zeros."""
    return np.zeros((SIZE, SIZE))


def _blobs(rng: np.random.Generator, grid: int, count: int) -> np.ndarray:
    yy, xx = np.mgrid[:grid, :grid].astype(np.float64)
    field = np.zeros((grid, grid))
    for _ in range(count):
        cx, cy = rng.uniform(0, grid, 2)
        sx, sy = rng.uniform(0.05, 0.3, 2) * grid
        field += rng.uniform(0.2, 1.0) * np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
    return field


def _normalise(m: np.ndarray) -> np.ndarray:
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def random_map(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A (224, 224) float64 map in [0, 1] of one family."""
    if kind == "smooth":
        low = _blobs(rng, int(rng.choice([7, 14, 28])), int(rng.integers(1, 4)))
        return _normalise(cv2.resize(low, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR))
    if kind == "speckle":
        low = np.maximum(_blobs(rng, 28, int(rng.integers(1, 5))) + rng.normal(0, 0.1, (28, 28)), 0)
        method = rng.choice([cv2.INTER_LINEAR, cv2.INTER_CUBIC])
        return _normalise(cv2.resize(low, (SIZE, SIZE), interpolation=method))
    if kind == "rings":  # annuli, some with a blob inside the hole (nested components)
        yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float64)
        m = np.zeros((SIZE, SIZE))
        for _ in range(int(rng.integers(1, 4))):
            cx, cy, r = rng.uniform(30, 194), rng.uniform(30, 194), rng.uniform(10, 50)
            d = np.hypot(xx - cx, yy - cy)
            m += rng.uniform(0.3, 1) * np.exp(-0.5 * ((d - r) / rng.uniform(2, 8)) ** 2)
            if rng.random() < 0.5:
                m += rng.uniform(0.2, 1) * np.exp(-0.5 * (d / rng.uniform(2, r / 3)) ** 2)
        return _normalise(m + rng.normal(0, 0.01, m.shape))
    if kind == "fcam":
        field = cv2.resize(_blobs(rng, 28, int(rng.integers(1, 4))), (SIZE, SIZE),
                           interpolation=cv2.INTER_CUBIC)
        return 1 / (1 + np.exp(-rng.uniform(5, 40) * (field - rng.uniform(0.2, 0.7) * field.max())))
    if kind == "plateaus":  # few grey levels, flat regions, exact 0 and 1 areas
        low = np.floor(_normalise(_blobs(rng, 14, 3)) * rng.integers(2, 8)) / 7
        return np.clip(cv2.resize(low, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST), 0, 1)
    if kind == "noise":  # blurred noise in a window: thousands of contours
        m = _normalise(cv2.resize(_blobs(rng, 7, 2), (SIZE, SIZE)))
        y, x = rng.integers(0, SIZE - 60, 2)
        m[y : y + 60, x : x + 60] = _normalise(cv2.GaussianBlur(rng.random((60, 60)), (0, 0), 0.6))
        return m
    raise ValueError(kind)


def random_boxes(rng: np.random.Generator) -> np.ndarray:
    """(k, 4) int64 inclusive boxes, k in 1..3, some touching the border or ending at 224."""
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = rng.integers(0, SIZE - 8, 2)
        w, h = rng.integers(4, 140, 2)
        boxes.append([x0, y0, min(x0 + w, SIZE), min(y0 + h, SIZE - 1)])
    return np.array(boxes, dtype=np.int64)


def make_set(seed: int, scale: int = 1) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(kind, map, boxes) triples of every family, seeded."""
    rng = np.random.default_rng(seed)
    counts = {"smooth": 10, "speckle": 10, "rings": 6, "fcam": 6, "plateaus": 6, "noise": 2}
    return [(kind, random_map(kind, rng), random_boxes(rng))
            for kind, n in counts.items() for _ in range(n * scale)]
