"""Fake but format-exact evaluation outputs (metrics.json, curves.json, samples.npz) for the report tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fcam.constants import DATASET_KINDS
from fcam.io import save_json, save_npz

SIZE = 224


def _metrics(kind: str, rng: np.random.Generator, good: bool) -> dict[str, float]:
    """Plausible metrics in percent: Top-1 <= Top-5 <= GT-known = MaxBoxAcc."""
    low, high = (70.0, 95.0) if good else (40.0, 75.0)
    loc = float(rng.uniform(low, high))
    cls = float(rng.uniform(60.0, 95.0))
    if kind == "masks":
        return {"pxap": loc, "classification_top1": cls}
    top5 = loc * float(rng.uniform(0.8, 1.0))
    return {
        "max_box_acc": loc,
        "max_box_acc_v2": loc * float(rng.uniform(0.7, 0.95)),
        "top1_loc": top5 * cls / 100.0,
        "top5_loc": top5,
        "gt_known_loc": loc,
        "classification_top1": cls,
    }


@pytest.fixture
def write_metrics() -> Callable[..., Path]:
    """``write_metrics(root, ds, backbone, method, variant, metrics=None, **fields)`` -> its path."""

    def write(
        root: Path,
        ds: str,
        backbone: str,
        method: str,
        variant: str,
        metrics: dict[str, float] | None = None,
        seed: int = 0,
        **fields: Any,
    ) -> Path:
        rng = np.random.default_rng(seed)
        kind = DATASET_KINDS[ds]
        record: dict[str, Any] = {
            "ds": ds,
            "backbone": backbone,
            "method": method,
            "variant": variant,
            "kind": kind,
            "split": "test",
            "checkpoint": "best",
            "preset": "default",
            "num_images": 300,
            "metrics": metrics if metrics is not None else _metrics(kind, rng, variant == "fcam"),
        }
        if variant == "fcam":
            record["metrics_last"] = _metrics(kind, rng, True)
        record |= fields
        path = root / ds / backbone / method / variant / "metrics.json"
        save_json(record, path)
        return path

    return write


@pytest.fixture
def results_tree(tmp_path: Path, write_metrics: Callable[..., Path]) -> Path:
    """Two datasets (boxes, masks) x two backbones x two methods x two variants, seeded values."""
    root = tmp_path / "results" / "evaluate"
    seed = 0
    for ds in ("synth_boxes", "synth_masks"):
        for backbone in ("vgg16", "resnet50"):
            for method in ("cam", "gradcam"):
                for variant in ("baseline", "fcam"):
                    write_metrics(root, ds, backbone, method, variant, seed=seed)
                    seed += 1
    return root


def make_curves(kind: str, rng: np.random.Generator, good: bool) -> dict[str, Any]:
    """curves.json content: bell-shaped accuracy vs tau, or a monotone precision-recall curve."""
    edges = np.linspace(0.0, 1.0, 51)
    centres = (edges[:-1] + edges[1:]) / 2
    fg = np.round(1e5 * np.exp(-(((centres - (0.8 if good else 0.5)) / 0.15) ** 2))).astype(int)
    bg = np.round(1e6 * np.exp(-centres / (0.1 if good else 0.3))).astype(int)
    hist = {
        "edges": edges.tolist(),
        "counts": (fg + bg).tolist(),
        "counts_fg": fg.tolist(),
        "counts_bg": bg.tolist(),
    }
    if kind == "boxes":
        tau = np.arange(0, 1, 0.001)
        peak = 90.0 if good else 60.0

        def bell(scale: float, centre: float) -> list[float]:
            return (scale * peak * np.exp(-(((tau - centre) / 0.2) ** 2))).tolist()

        centre = float(rng.uniform(0.2, 0.5))
        return {
            "tau": tau.tolist(),
            "box_acc": {"30": bell(1.05, centre), "50": bell(1.0, centre), "70": bell(0.6, centre)},
            "box_acc_largest": bell(0.98, centre),
            "top1_loc": bell(0.7, centre),
            "top5_loc": bell(0.9, centre),
            "histogram": hist,
        }
    threshold = np.arange(0, 1, 0.001)
    recall = 1.0 - threshold ** (3.0 if good else 1.0)
    precision = 0.3 + 0.7 * threshold ** (0.3 if good else 1.0)
    return {
        "threshold": threshold.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "histogram": hist,
    }


def make_samples(kind: str, rng: np.random.Generator, n: int, sharp: bool) -> dict[str, np.ndarray]:
    """samples.npz content: blocky random images with a Gaussian blob map around one object per image."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    cy, cx = rng.integers(60, 164, size=(2, n))
    half = rng.integers(20, 50, size=(2, n))
    sigma = (half * (0.5 if sharp else 1.5))[..., None, None]
    maps = np.exp(
        -((yy - cy[:, None, None]) ** 2 / sigma[0] ** 2 + (xx - cx[:, None, None]) ** 2 / sigma[1] ** 2)
    )
    maps = (maps / maps.max(axis=(1, 2), keepdims=True)).astype(np.float32)
    out = {
        "ids": np.array([f"test/img_{i:03d}.png" for i in range(n)]),
        # blocky colour fields: image-like (compressible) rather than white noise
        "images": np.repeat(np.repeat(rng.integers(0, 256, size=(n, 7, 7, 3), dtype=np.uint8), 32, 1), 32, 2),
        "maps": maps,
        "best_tau": np.float64(0.35 if sharp else 0.2),
    }
    x0, y0, x1, y1 = cx - half[1], cy - half[0], cx + half[1], cy + half[0]
    if kind == "boxes":
        gt = np.full((n, 2, 4), -1, dtype=np.int32)
        gt[:, 0] = np.stack([x0, y0, x1, y1], axis=1)
        out["gt_boxes"] = gt
        grow = 2 if sharp else 25
        out["pred_boxes"] = np.clip(
            np.stack([x0 - grow, y0 - grow, x1 + grow, y1 + grow], axis=1), 0, SIZE - 1
        ).astype(np.int32)
    else:
        inside = (np.abs(yy - cy[:, None, None]) <= half[0][:, None, None]) & (
            np.abs(xx - cx[:, None, None]) <= half[1][:, None, None]
        )
        out["gt_masks"] = inside
        out["ignore"] = np.zeros_like(inside)
        out["ignore"][:, :10, :] = True
    return out


@pytest.fixture
def eval_outputs(tmp_path: Path) -> Callable[[str], Path]:
    """``eval_outputs(ds) -> results_dir`` with both variants' curves.json and samples.npz (resnet50/cam)."""

    def build(ds: str) -> Path:
        kind = DATASET_KINDS[ds]
        root = tmp_path / "results" / "evaluate"
        for variant, good in (("baseline", False), ("fcam", True)):
            folder = root / ds / "resnet50" / "cam" / variant
            save_json(make_curves(kind, np.random.default_rng(1), good), folder / "curves.json")
            save_npz(folder / "samples.npz", **make_samples(kind, np.random.default_rng(2), 3, good))
        return root

    return build


_ROW = re.compile(r"^(?P<title>[^&]*?)\s*&(?P<cells>.*)\\\\$")


@pytest.fixture
def parse_tex() -> Callable[[str], dict[str, list[str]]]:
    """``parse_tex(tex) -> {row title: [cell, ...]}`` for each ``a & b & c \\\\`` line (headers under '')."""

    def parse(tex: str) -> dict[str, list[str]]:
        rows: dict[str, list[str]] = {}
        for line in tex.splitlines():
            match = _ROW.match(line.strip())
            if match:
                rows.setdefault(match["title"], [c.strip() for c in match["cells"].split("&")])
        return rows

    return parse
