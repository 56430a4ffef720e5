"""Fake but format-exact evaluation outputs (metrics.json, curves.json, samples.npz) for the report tests,
in the per-seed layout ``<ds>/<backbone>/<method>/seed<seed>/<variant>/``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fcam.constants import DATASET_KINDS
from fcam.io import save_json, save_npz
from fcam.report.results import Grid

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


#: The setting an fcam record names unless a test gives another.
SETTING = {"name": "nbg0.1-alpha1", "bg_fraction": 0.1, "pce_weight": 1.0}


def _histogram(good: bool) -> dict[str, list]:
    """A 50-bin histogram: a sharp (good) or a spread foreground, a decaying background."""
    edges = np.linspace(0.0, 1.0, 51)
    centres = (edges[:-1] + edges[1:]) / 2
    fg = np.round(1e5 * np.exp(-(((centres - (0.8 if good else 0.5)) / 0.15) ** 2))).astype(int)
    bg = np.round(1e6 * np.exp(-centres / (0.1 if good else 0.3))).astype(int)
    return {
        "edges": edges.tolist(),
        "counts": (fg + bg).tolist(),
        "counts_fg": fg.tolist(),
        "counts_bg": bg.tolist(),
    }


@dataclass(frozen=True)
class Tree:
    """Fake evaluation outputs: the listed metrics.json paths and the grid they cover."""

    root: Path
    paths: list[Path]
    grid: Grid


@pytest.fixture
def write_metrics() -> Callable[..., Path]:
    """``write_metrics(root, ds, backbone, method, variant, metrics=None, seed=0, **fields)`` -> its path.

    Writes ``<root>/<ds>/<backbone>/<method>/seed<seed>/<variant>/metrics.json`` in the evaluation's
    format (random plausible metrics unless given; ``metrics_last`` and a ``setting`` for fcam) and a
    ``curves.json`` beside it holding the histogram (``histogram=`` overrides it, ``None`` skips the
    file). ``fields`` override the record's top-level fields.
    """

    def write(
        root: Path,
        ds: str,
        backbone: str,
        method: str,
        variant: str,
        metrics: dict[str, float | None] | None = None,
        seed: int = 0,
        histogram: dict[str, list] | str | None = "default",
        **fields: Any,
    ) -> Path:
        key = f"{ds}/{backbone}/{method}/{seed}/{variant}"
        rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
        kind = DATASET_KINDS[ds]
        good = variant != "baseline"
        record: dict[str, Any] = {
            "ds": ds,
            "backbone": backbone,
            "method": method,
            "seed": seed,
            "variant": variant,
            "kind": kind,
            "split": "test",
            "checkpoint": "best",
            "preset": "default",
            "num_images": 300,
            "setting": None if variant == "baseline" else dict(SETTING),
            "metrics": metrics if metrics is not None else _metrics(kind, rng, good),
        }
        if good:
            record["metrics_last"] = _metrics(kind, rng, True)
        record |= fields
        folder = root / ds / backbone / method / f"seed{seed}" / variant
        save_json(record, folder / "metrics.json")
        if histogram == "default":
            histogram = _histogram(good)
        if histogram is not None:
            save_json({"histogram": histogram}, folder / "curves.json")
        return folder / "metrics.json"

    return write


@pytest.fixture
def results_tree(tmp_path: Path, write_metrics: Callable[..., Path]) -> Tree:
    """Two datasets (boxes, masks) x two backbones x two methods x seeds 0-2 x two variants."""
    root = tmp_path / "results" / "evaluate"
    grid = Grid(
        datasets=("synth_boxes", "synth_masks"),
        backbones=("vgg16", "resnet50"),
        methods=("cam", "gradcam"),
        seeds=(0, 1, 2),
    )
    paths = [
        write_metrics(root, ds, backbone, method, variant, seed=seed)
        for ds, backbone, method, seed, variant in grid.evaluations()
    ]
    return Tree(root, paths, grid)


def make_curves(kind: str, rng: np.random.Generator, good: bool) -> dict[str, Any]:
    """curves.json content: bell-shaped accuracy vs tau, or a monotone precision-recall curve."""
    hist = _histogram(good)
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


@dataclass(frozen=True)
class EvalOutputs:
    """One seed's curves.json and samples.npz of both variants of <ds>/resnet50/cam."""

    ds: str
    folder: Path  # <root>/<ds>/resnet50/cam/seed<seed>

    def curves(self, variant: str) -> Path:
        return self.folder / variant / "curves.json"

    def samples(self, variant: str) -> Path:
        return self.folder / variant / "samples.npz"

    def figure_inputs(self) -> dict[str, Path]:
        """The keyword arguments of write_figures that name the inputs."""
        return {
            f"{variant}_{what}": getattr(self, what)(variant)
            for variant in ("baseline", "fcam")
            for what in ("curves", "samples")
        }


@pytest.fixture
def eval_outputs(tmp_path: Path) -> Callable[..., EvalOutputs]:
    """``eval_outputs(ds, seed=0)``: both variants' curves.json and samples.npz of <ds>/resnet50/cam."""

    def build(ds: str, seed: int = 0) -> EvalOutputs:
        kind = DATASET_KINDS[ds]
        folder = tmp_path / "results" / "evaluate" / ds / "resnet50" / "cam" / f"seed{seed}"
        for variant, good in (("baseline", False), ("fcam", True)):
            save_json(make_curves(kind, np.random.default_rng(1), good), folder / variant / "curves.json")
            save_npz(
                folder / variant / "samples.npz", **make_samples(kind, np.random.default_rng(2), 3, good)
            )
        return EvalOutputs(ds, folder)

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
