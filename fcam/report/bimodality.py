"""How bimodal a map's values are (the paper's Fig. 8), from the histograms in ``curves.json``.

The evaluation job pools the test split's map values (224 x 224 per image) into a histogram of 50
bins over [0, 1]: bin k holds values in [k/50, (k+1)/50), the last bin also 1.0; ``counts_fg``
counts pixels inside the ground truth (a true box or mask), ``counts_bg`` the others, ``counts``
all. F-CAM's foreground probability should be close to 0 or 1 almost everywhere, a baseline
CAM's values spread in between. Two measures, both computed from those counts:

**Outer mass** (:func:`outer_mass`): the fraction of the pixels whose value lies in the outer
bins, [0, 0.1) or [0.9, 1]: ``sum(counts[k] for bins inside [0, 0.1) or [0.9, 1]) /
sum(counts)``. Reported over foreground pixels (``counts_fg``): near 1 when the maps are
confident (0 or 1) inside the objects' boxes or masks, near 0.2 for values spread uniformly.
Exact from the histogram, since 0.1 and 0.9 are bin edges.

**Bimodality coefficient** (Sarle's b; :func:`bimodality_coefficient`): with every pixel placed
at its bin's centre c_k, the weighted central moments m_j = sum_k w_k (c_k - mu)^j (w_k = counts /
total, mu = sum_k w_k c_k), skewness g = m_3 / m_2^1.5 and kurtosis K = m_4 / m_2^2 (not excess),
``b = (g^2 + 1) / K``. This is the large-sample form: the finite-sample term of Sarle's formula,
3 (n-1)^2 / ((n-2)(n-3)) in place of 3, differs from 3 by less than 1e-5 for n >= 10^6 pixels.
b = 1 for any two-point distribution, 5/9 ~ 0.556 for a uniform one, 1/3 for a normal one; b >
5/9 suggests bimodality. NaN when every pixel falls in one bin (no spread). Reported over all
pixels (``counts``) and over foreground pixels (``counts_fg``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from fcam.errors import DataError

__all__ = [
    "OUTER_HIGH",
    "OUTER_LOW",
    "Bimodality",
    "bimodality_coefficient",
    "check_histogram",
    "histogram_bimodality",
    "load_histogram",
    "outer_mass",
]

#: The outer bins are [0, OUTER_LOW) and [OUTER_HIGH, 1].
OUTER_LOW: Final = 0.1
OUTER_HIGH: Final = 0.9
_EDGE_TOL: Final = 1e-9
_COUNT_KEYS: Final = ("counts", "counts_fg", "counts_bg")


def _array(value: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: not an array of numbers ({exc})") from exc
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise DataError(f"{where}: expected a finite 1-d array of numbers, got shape {arr.shape}")
    return arr


def check_histogram(hist: Any, where: str) -> dict[str, np.ndarray]:
    """Validate ``curves.json``'s ``histogram`` and return its arrays as float64.

    Args:
        hist: ``{"edges": (N+1,), "counts": (N,), "counts_fg": (N,), "counts_bg": (N,)}``.
        where: the source, for messages (a file path).

    Raises:
        DataError: not an object, a key missing, edges not increasing within [0, 1], or counts of
            the wrong length or negative (the message names ``where`` and the key).
    """
    if not isinstance(hist, Mapping):
        raise DataError(f"{where}: 'histogram' must be an object")
    if "edges" not in hist:
        raise DataError(f"{where}: key 'histogram.edges' missing")
    edges = _array(hist["edges"], f"{where}: 'histogram.edges'")
    if edges.size < 2 or (np.diff(edges) <= 0).any() or edges[0] < 0 or edges[-1] > 1:
        raise DataError(f"{where}: 'histogram.edges' must increase within [0, 1], got {edges.size} edges")
    out = {"edges": edges}
    for key in _COUNT_KEYS:
        if key not in hist:
            raise DataError(f"{where}: key 'histogram.{key}' missing")
        counts = _array(hist[key], f"{where}: 'histogram.{key}'")
        if counts.size + 1 != edges.size or (counts < 0).any():
            raise DataError(
                f"{where}: 'histogram.{key}' needs {edges.size - 1} counts >= 0, got {counts.size}"
            )
        out[key] = counts
    return out


def load_histogram(path: Path) -> dict[str, np.ndarray]:
    """The validated ``histogram`` of a ``curves.json`` (see :func:`check_histogram`).

    Raises:
        DataError: the file is missing, not JSON, or its histogram is malformed (names the file).
    """
    path = Path(path)
    try:
        curves = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read curves JSON ({exc})") from exc
    if not isinstance(curves, Mapping) or "histogram" not in curves:
        raise DataError(f"{path}: key 'histogram' missing")
    return check_histogram(curves["histogram"], str(path))


def outer_mass(counts: np.ndarray, edges: np.ndarray, *, where: str = "histogram") -> float:
    """The fraction of ``counts`` in the bins inside [0, 0.1) or [0.9, 1] (module docstring).

    Args:
        counts: (N,) pixel counts >= 0.
        edges: (N+1,) increasing bin edges in [0, 1]; 0.1 and 0.9 must be among them.
        where: the source, for messages.

    Returns:
        A fraction in [0, 1]; NaN when ``counts`` sums to 0.

    Raises:
        DataError: a bin straddles 0.1 or 0.9, so that the fraction would not be exact.
    """
    left, right = edges[:-1], edges[1:]
    for cut in (OUTER_LOW, OUTER_HIGH):
        if ((left < cut - _EDGE_TOL) & (right > cut + _EDGE_TOL)).any():
            raise DataError(f"{where}: no histogram edge at {cut:g}, so the outer mass is not exact")
    outer = (right <= OUTER_LOW + _EDGE_TOL) | (left >= OUTER_HIGH - _EDGE_TOL)
    total = float(counts.sum())
    return math.nan if total <= 0 else float(counts[outer].sum()) / total


def bimodality_coefficient(counts: np.ndarray, edges: np.ndarray) -> float:
    """Sarle's bimodality coefficient b = (g^2 + 1) / K of the binned values (module docstring).

    Args:
        counts: (N,) pixel counts >= 0.
        edges: (N+1,) bin edges; each pixel is placed at its bin's centre.

    Returns:
        b in (0, 1]; NaN when the counts sum to 0 or lie in one bin.
    """
    total = float(counts.sum())
    if total <= 0:
        return math.nan
    w = counts / total
    centres = (edges[:-1] + edges[1:]) / 2
    d = centres - float(w @ centres)
    m2, m3, m4 = (float(w @ d**j) for j in (2, 3, 4))
    if m2 <= 0 or np.count_nonzero(counts) < 2:
        return math.nan
    return (m3**2 / m2**3 + 1.0) / (m4 / m2**2)


@dataclass(frozen=True)
class Bimodality:
    """The measures of one evaluation: outer mass and b over foreground pixels, b over all pixels."""

    outer_fg: float
    coefficient_fg: float
    coefficient_all: float


def histogram_bimodality(hist: Mapping[str, np.ndarray], *, where: str = "histogram") -> Bimodality:
    """:class:`Bimodality` of a validated histogram (as returned by :func:`check_histogram`)."""
    edges = hist["edges"]
    return Bimodality(
        outer_fg=outer_mass(hist["counts_fg"], edges, where=where),
        coefficient_fg=bimodality_coefficient(hist["counts_fg"], edges),
        coefficient_all=bimodality_coefficient(hist["counts"], edges),
    )
