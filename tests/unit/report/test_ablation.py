"""The loss ablation table: one row per variant, mean ± std over seeds per dataset, best mean in bold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fcam.constants import DATASET_KINDS
from fcam.errors import ConfigError, DataError
from fcam.report.ablation import ablation_tex, write_ablation
from fcam.report.results import Grid, load_results

VARIANTS = ("pce", "pce_crf", "pce_size", "fcam")


def _metrics(kind: str, value: float) -> dict[str, float]:
    if kind == "masks":
        return {"pxap": value, "classification_top1": 50.0}
    keys = ("max_box_acc", "max_box_acc_v2", "top1_loc", "top5_loc", "gt_known_loc", "classification_top1")
    return dict.fromkeys(keys, value)


def _rows(tex: str) -> dict[str, str]:
    return dict(re.findall(r"^([^&\n]*?) & (.*) \\\\$", tex, flags=re.M))


def _write(
    write_metrics, root: Path, values: dict[str, dict[str, list[float]]], seeds: tuple[int, ...]
) -> list[Path]:
    """``values[variant][ds]`` = per-seed metric; the records of resnet50/cam."""
    paths = []
    for variant, per_ds in values.items():
        for ds, per_seed in per_ds.items():
            kind = DATASET_KINDS[ds]
            for seed, value in zip(seeds, per_seed, strict=True):
                paths.append(
                    write_metrics(
                        root, ds, "resnet50", "cam", variant, seed=seed, metrics=_metrics(kind, value)
                    )
                )
    return paths


def test_table_rows_mean_std_and_bold(tmp_path: Path, write_metrics) -> None:
    values = {
        "pce": {"synth_boxes": [40.0, 42.0, 44.0], "synth_masks": [50.0, 50.0, 50.0]},
        "pce_crf": {"synth_boxes": [61.0, 62.0, 60.78], "synth_masks": [48.0, 47.0, 49.0]},
        "pce_size": {"synth_boxes": [55.0, 55.0, 55.0], "synth_masks": [52.0, 53.0, 52.5]},
        "fcam": {"synth_boxes": [61.0, 61.0, 61.72], "synth_masks": [51.0, 50.0, 52.0]},
    }
    paths = _write(write_metrics, tmp_path, values, (0, 1, 2))
    grid = Grid(("synth_boxes", "synth_masks"), ("resnet50",), ("cam",), (0, 1, 2), variants=VARIANTS)
    tex = ablation_tex(load_results(paths, grid))
    rows = _rows(tex)
    assert list(rows) == ["Loss", "PCE", "PCE + CRF", "PCE + size", "PCE + CRF + size (F-CAM)"]
    assert rows["Loss"] == "Synth-Boxes (MaxBoxAcc) & Synth-Masks (PxAP)"
    assert rows["PCE"] == r"42.0 $\pm$ 2.0 & 50.0 $\pm$ 0.0"
    # 61, 62, 60.78: mean 61.26, std sqrt(0.4228) = 0.65; 61, 61, 61.72: mean 61.24 prints below 61.3
    assert rows["PCE + CRF"] == r"\textbf{61.3} $\pm$ 0.7 & 48.0 $\pm$ 1.0"
    assert rows["PCE + CRF + size (F-CAM)"] == r"61.2 $\pm$ 0.4 & 51.0 $\pm$ 1.0"
    assert rows["PCE + size"] == r"55.0 $\pm$ 0.0 & \textbf{52.5} $\pm$ 0.5"
    assert r"over $n = 3$ seeds (0, 1, 2)" in tex
    out = write_ablation(paths, tmp_path / "reports" / "ablation.tex", grid=grid)
    assert out.read_text() == tex


def test_one_seed_and_custom_titles(tmp_path: Path, write_metrics) -> None:
    values = {"pce": {"cub": [40.04]}, "no_size": {"cub": [61.26]}}
    paths = _write(write_metrics, tmp_path, values, (3,))
    grid = Grid(("cub",), ("resnet50",), ("cam",), (3,), variants=("no_size", "pce"))
    tex = ablation_tex(load_results(paths, grid), titles={"no_size": "PCE + CRF (no size_)"})
    rows = _rows(tex)
    assert list(rows) == ["Loss", r"PCE + CRF (no size\_)", "PCE"]  # the grid's order, titles escaped
    assert rows[r"PCE + CRF (no size\_)"] == r"\textbf{61.3}"
    assert rows["PCE"] == "40.0"
    assert "one seed (3), no spread" in tex
    assert r"\pm" not in tex


def test_missing_and_malformed_results(tmp_path: Path, write_metrics) -> None:
    values = {"pce": {"synth_boxes": [40.0, 41.0]}, "full": {"synth_boxes": [50.0, 52.0]}}
    paths = _write(write_metrics, tmp_path, values, (0, 1))
    grid = Grid(("synth_boxes",), ("resnet50",), ("cam",), (0, 1), variants=("pce", "full"))
    with pytest.raises(DataError, match=r"no metrics\.json listed for synth_boxes/resnet50/cam/seed1/full"):
        write_ablation(paths[:-1], tmp_path / "a.tex", grid=grid)
    paths[1].write_text('{"kind": "boxes", "metrics": {}}')
    with pytest.raises(DataError, match="key 'ds' missing") as info:
        write_ablation(paths, tmp_path / "a.tex", grid=grid)
    assert str(paths[1]) in str(info.value)
    paths[1].unlink()
    with pytest.raises(DataError, match="cannot read metrics JSON") as info:
        write_ablation(paths, tmp_path / "a.tex", grid=grid)
    assert str(paths[1]) in str(info.value)
    assert not (tmp_path / "a.tex").exists()


def test_one_backbone_and_method(tmp_path: Path, write_metrics) -> None:
    paths = [
        write_metrics(tmp_path, "cub", backbone, "cam", "pce", metrics=_metrics("boxes", 50.0))
        for backbone in ("vgg16", "resnet50")
    ]
    grid = Grid(("cub",), ("vgg16", "resnet50"), ("cam",), (0,), variants=("pce",))
    with pytest.raises(ConfigError, match="one backbone and one method"):
        ablation_tex(load_results(paths, grid))
