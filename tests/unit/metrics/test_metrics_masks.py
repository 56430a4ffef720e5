"""PxAP by hand, against wsolevaluation's arithmetic (reference) and against scikit-learn's AP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcam.metrics import MaskEvaluator, pxap
from fcam.metrics.reference import reference_pxap
from tests.unit.metrics._maps import blank


def _disc() -> np.ndarray:
    yy, xx = np.mgrid[:224, :224]
    return np.hypot(xx - 100, yy - 120) < 40


def test_perfect_map_scores_100():
    gt = _disc()
    assert pxap(gt[None].astype(np.float64), gt[None]) == 100.0


def test_constant_map_scores_the_foreground_share():
    gt = _disc()
    share = gt.sum() / gt.size
    assert pxap(np.full((1, 224, 224), 0.5), gt[None]) == pytest.approx(100 * share, rel=1e-12)


def test_ignore_region_is_ignore_minus_foreground():
    gt = _disc()
    ignore = np.zeros_like(gt)
    ignore[:, :112] = True  # covers background and part of the foreground
    kept_bg = (~gt & ~ignore).sum()
    expected = 100 * gt.sum() / (gt.sum() + kept_bg)  # a constant map: precision = fg / (fg + kept bg)
    assert pxap(np.full((1, 224, 224), 0.3), gt[None], ignore[None]) == pytest.approx(expected, rel=1e-12)
    assert pxap(gt[None] * 0.7, gt[None], ignore[None]) == 100.0


def test_scores_of_exactly_one_and_on_bin_edges_match_the_reference():
    rng = np.random.default_rng(4)
    edges = np.arange(0, 1, 0.001)
    maps = rng.choice(np.concatenate([edges, np.nextafter(edges[1:], 0), [1.0]]), size=(3, 224, 224))
    gts = rng.random((3, 224, 224)) < maps
    ignore = rng.random((3, 224, 224)) < 0.1
    value, _, _ = reference_pxap(maps, gts, ignore)
    assert pxap(maps, gts, ignore) == value  # bit for bit


def test_streaming_equals_the_reference_on_random_maps(random_set):
    maps = np.stack([m for _, m, _ in random_set[:10]])
    rng = np.random.default_rng(5)
    gts = rng.random(maps.shape) < maps
    ignore = rng.random(maps.shape) < 0.2
    evaluator = MaskEvaluator()
    for sl in (slice(0, 3), slice(3, 10)):
        evaluator.accumulate(maps[sl], gts[sl], ignore[sl])
    result = evaluator.compute()
    value, precision, recall = reference_pxap(maps, gts, ignore)
    assert result.pxap == value
    defined = ~np.isnan(precision)
    defined[0] = False
    np.testing.assert_array_equal(result.precision, precision[defined])
    np.testing.assert_array_equal(result.recall, recall[defined])
    curves = json.loads(json.dumps(result.curves()))
    assert set(curves) == {"threshold", "precision", "recall"}
    assert curves["threshold"][0] == 1.0
    assert curves["threshold"] == sorted(curves["threshold"], reverse=True)


def test_equals_sklearn_average_precision_when_scores_sit_on_bin_edges():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(6)
    # every score is a bin edge, so each distinct score has its own bin (k / 1000 would not do: 144
    # of np.arange's edges lie above k / 1000)
    scores = np.arange(0, 1, 0.001)[rng.integers(0, 1000, (2, 224, 224))]
    gts = rng.random(scores.shape) < scores
    expected = 100 * sklearn_metrics.average_precision_score(gts.ravel(), scores.ravel())
    assert pxap(scores, gts) == pytest.approx(expected, rel=1e-9)


def test_errors():
    with pytest.raises(ValueError, match="no foreground"):
        pxap(blank()[None], np.zeros((1, 224, 224), bool))
    with pytest.raises(ValueError, match=r"gt_masks must have shape \(1, 224, 224\)"):
        pxap(blank()[None], np.zeros((224, 224), bool))
    with pytest.raises(ValueError, match="boolean"):
        pxap(blank()[None], np.full((1, 224, 224), 2))
    with pytest.raises(ValueError, match="outside"):
        pxap(np.full((1, 224, 224), 1.01), np.ones((1, 224, 224), bool))
