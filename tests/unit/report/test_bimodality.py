"""Outer mass and Sarle's bimodality coefficient of known histograms."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fcam.errors import DataError
from fcam.report.bimodality import (
    bimodality_coefficient,
    check_histogram,
    histogram_bimodality,
    load_histogram,
    outer_mass,
)

EDGES = np.linspace(0.0, 1.0, 51)  # the evaluation's 50 bins


def _counts(**bins: float) -> np.ndarray:
    """50 counts, zero except ``b<k>=count``."""
    counts = np.zeros(50)
    for name, count in bins.items():
        counts[int(name[1:])] = count
    return counts


def test_two_point_distributions_score_one() -> None:
    # half the pixels at 0.01 (bin 0), half at 0.99 (bin 49): skewness 0, kurtosis 1 -> b = 1
    assert bimodality_coefficient(_counts(b0=5, b49=5), EDGES) == pytest.approx(1.0)
    # 3:1 at the two ends (Bernoulli p = 1/4): g^2 = (1 - 2p)^2 / (p q) = 4/3, K = 7/3 -> b = 1
    assert bimodality_coefficient(_counts(b0=3, b49=1), EDGES) == pytest.approx(1.0)
    assert outer_mass(_counts(b0=3, b49=1), EDGES) == 1.0


def test_uniform_histogram() -> None:
    # discrete uniform on N = 50 equally spaced centres: K = 3 (3N^2 - 7) / (5 (N^2 - 1)), g = 0
    n = 50
    expected = 5 * (n**2 - 1) / (3 * (3 * n**2 - 7))  # 12495 / 22479 = 0.5559, about 5/9
    assert bimodality_coefficient(np.ones(50), EDGES) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(5 / 9, abs=1e-3)
    # outer bins: 5 in [0, 0.1) and 5 in [0.9, 1] of 50
    assert outer_mass(np.ones(50), EDGES) == pytest.approx(0.2)


def test_three_point_symmetric() -> None:
    # 1:2:1 at the centres 0.01, 0.51, 0.99: b from the moments of the 4 values themselves
    counts = _counts(b0=1, b25=2, b49=1)
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    x = np.repeat(centres, counts.astype(int))
    d = x - x.mean()
    g2 = (np.mean(d**3) / np.mean(d**2) ** 1.5) ** 2
    k = np.mean(d**4) / np.mean(d**2) ** 2
    assert bimodality_coefficient(counts, EDGES) == pytest.approx((g2 + 1) / k)
    # nearly symmetric around 0.5: g ~ 0, K ~ 2 -> b ~ 0.5
    assert bimodality_coefficient(counts, EDGES) == pytest.approx(0.5, abs=1e-3)
    # outer mass: bins 0 and 49 are outer, bin 25 (0.50-0.52) is not
    assert outer_mass(counts, EDGES) == 0.5


def test_degenerate_histograms() -> None:
    assert math.isnan(bimodality_coefficient(np.zeros(50), EDGES))
    assert math.isnan(bimodality_coefficient(_counts(b7=100), EDGES))  # one bin: no spread
    assert math.isnan(outer_mass(np.zeros(50), EDGES))
    assert outer_mass(_counts(b4=1, b5=1, b44=1, b45=1), EDGES) == 0.5  # [0.08, 0.1) in, [0.1, 0.12) out


def test_outer_mass_needs_edges_at_the_cuts() -> None:
    edges = np.linspace(0.0, 1.0, 8)  # 7 bins: no edge at 0.1 or 0.9
    with pytest.raises(DataError, match=r"curves\.json: no histogram edge at 0\.1"):
        outer_mass(np.ones(7), edges, where="curves.json")


def test_fcam_like_vs_cam_like() -> None:
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    spread = np.exp(-(((centres - 0.5) / 0.15) ** 2))  # a CAM's foreground: mid values
    sharp = _counts(b0=30, b1=10, b48=20, b49=60)  # F-CAM's foreground: near 0 or 1
    hist = {"edges": EDGES, "counts": spread + sharp, "counts_fg": sharp, "counts_bg": spread}
    measures = histogram_bimodality(hist)
    assert measures.outer_fg == 1.0
    assert measures.coefficient_fg > 5 / 9
    assert bimodality_coefficient(spread, EDGES) < 5 / 9


def test_load_histogram(tmp_path: Path) -> None:
    path = tmp_path / "curves.json"
    hist = {"edges": EDGES.tolist(), "counts": [1] * 50, "counts_fg": [1] * 50, "counts_bg": [0] * 50}
    path.write_text(json.dumps({"tau": [0.0], "histogram": hist}))
    loaded = load_histogram(path)
    np.testing.assert_array_equal(loaded["counts_fg"], np.ones(50))
    with pytest.raises(DataError, match="cannot read curves JSON") as info:
        load_histogram(tmp_path / "missing" / "curves.json")
    assert "missing/curves.json" in str(info.value)
    path.write_text(json.dumps({"tau": [0.0]}))
    with pytest.raises(DataError, match="key 'histogram' missing"):
        load_histogram(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h.pop("counts_fg"), "key 'histogram.counts_fg' missing"),
        (lambda h: h.update(counts_bg=h["counts_bg"][:3]), "needs 50 counts >= 0, got 3"),
        (lambda h: h.update(counts=[-1] * 50), "needs 50 counts >= 0"),
        (lambda h: h.update(edges=h["edges"][::-1]), "must increase within"),
        (lambda h: h.update(counts=[math.nan] * 50), "finite"),
    ],
)
def test_malformed_histogram_named(change, message: str) -> None:
    hist = {"edges": EDGES.tolist(), "counts": [1] * 50, "counts_fg": [1] * 50, "counts_bg": [0] * 50}
    change(hist)
    with pytest.raises(DataError, match=message) as info:
        check_histogram(hist, "x/curves.json")
    assert "x/curves.json" in str(info.value)
