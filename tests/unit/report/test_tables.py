"""The LaTeX of Tables 1 and 2: mean ± std over seeds per cell, best mean in bold."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fcam.errors import ConfigError, DataError
from fcam.report.results import Grid, load_results, mean_std
from fcam.report.tables import table1_tex, table2_tex, write_table1, write_table2

from .conftest import Tree

ParseTex = Callable[[str], dict[str, list[str]]]
PM = r" $\pm$ "
BOX_KEYS = ("max_box_acc", "max_box_acc_v2", "top1_loc", "top5_loc", "gt_known_loc")


def _boxes(value: float | None, **others: float | None) -> dict[str, float | None]:
    return dict.fromkeys(BOX_KEYS, value) | {"classification_top1": 50.0} | others


def _mean(cell: str) -> float:
    mean = cell.split(PM)[0]
    return math.nan if mean == "--" else float(mean.removeprefix(r"\textbf{").removesuffix("}"))


def _cell(values: np.ndarray) -> str:
    mean, std = mean_std(values)
    return f"{mean:.1f}{PM}{std:.1f}"


def _write_cells(write_metrics, root: Path, values: dict[tuple[str, str], list]) -> tuple[list[Path], Grid]:
    """CUB, ResNet50: ``values[(method, variant)]`` = per-seed MaxBoxAcc (None: not computed)."""
    methods = tuple(dict.fromkeys(m for m, _ in values))
    seeds = tuple(range(len(next(iter(values.values())))))
    paths = [
        write_metrics(root, "cub", "resnet50", method, variant, seed=seed, metrics=_boxes(v))
        for (method, variant), per_seed in values.items()
        for seed, v in enumerate(per_seed)
    ]
    return paths, Grid(("cub",), ("resnet50",), methods, seeds)


def test_three_seeds_exact_cells(tmp_path: Path, write_metrics, parse_tex: ParseTex) -> None:
    paths, grid = _write_cells(
        write_metrics,
        tmp_path,
        {
            ("cam", "baseline"): [70.0, 72.0, 74.0],  # mean 72, std 2
            ("cam", "fcam"): [80.0, 83.0, 89.0],  # mean 84, std sqrt(21) = 4.58
            ("gradcam", "baseline"): [60.0, 60.0, 60.0],  # std 0
            ("gradcam", "fcam"): [84.0, 84.0, None],  # a missing value: no mean
        },
    )
    tex = table1_tex(load_results(paths, grid))
    rows = parse_tex(tex)
    assert rows["CAM"] == [r"72.0 $\pm$ 2.0"]
    assert rows["CAM + F-CAM"] == [r"\textbf{84.0} $\pm$ 4.6"]
    assert rows["GradCAM"] == [r"60.0 $\pm$ 0.0"]
    assert rows["GradCAM + F-CAM"] == ["--"]
    assert r"over $n = 3$ seeds (0, 1, 2)" in tex
    assert "Best decoder checkpoint" in tex


def test_one_seed_prints_the_mean_alone(tmp_path: Path, write_metrics, parse_tex: ParseTex) -> None:
    paths, grid = _write_cells(
        write_metrics, tmp_path, {("cam", "baseline"): [70.04], ("cam", "fcam"): [79.96]}
    )
    results = load_results(paths, grid)
    rows = parse_tex(table1_tex(results))
    assert rows["CAM"] == ["70.0"]
    assert rows["CAM + F-CAM"] == [r"\textbf{80.0}"]
    assert r"\pm" not in table1_tex(results)
    assert "one seed (0), no spread" in table1_tex(results)
    assert rows["CAM + F-CAM"] == parse_tex(table2_tex(results))["CAM + F-CAM"][:1]


def test_ties_of_printed_means_all_bold(tmp_path: Path, write_metrics, parse_tex: ParseTex) -> None:
    paths, grid = _write_cells(
        write_metrics,
        tmp_path,
        {("cam", "baseline"): [80.04, 80.04], ("cam", "fcam"): [79.0, 80.92]},  # 80.04 vs 79.96
    )
    rows = parse_tex(table1_tex(load_results(paths, grid)))
    assert rows["CAM"] == [r"\textbf{80.0} $\pm$ 0.0"]
    assert rows["CAM + F-CAM"] == [r"\textbf{80.0} $\pm$ 1.4"]


def test_table1_cells_means_and_bold(results_tree: Tree, parse_tex: ParseTex) -> None:
    results = load_results(results_tree.paths, results_tree.grid)
    rows = parse_tex(table1_tex(results))
    # header: per dataset, vgg16, resnet50, mean
    assert rows["Method"] == ["VGG16", "ResNet50", "Mean"] * 2
    titles = ["CAM", "GradCAM", "CAM + F-CAM", "GradCAM + F-CAM"]
    assert [t for t in rows if t not in ("", "Method")] == titles
    keys = [("cam", "baseline"), ("gradcam", "baseline"), ("cam", "fcam"), ("gradcam", "fcam")]
    expected = []
    for method, variant in keys:
        row = []
        for ds, metric in (("synth_boxes", "max_box_acc"), ("synth_masks", "pxap")):
            per_backbone = [results.values(ds, b, method, variant, metric) for b in ("vgg16", "resnet50")]
            # the Mean column: per seed the mean over backbones, then mean +- std over seeds
            row += [_cell(seeds) for seeds in (*per_backbone, (per_backbone[0] + per_backbone[1]) / 2)]
        expected.append(row)
    cells = [rows[t] for t in titles]
    assert [[c.replace(r"\textbf{", "").replace("}", "", 1) for c in row] for row in cells] == expected
    means = np.array([[_mean(c) for c in row] for row in cells])
    bold = np.array([[c.startswith(r"\textbf{") for c in row] for row in cells])
    np.testing.assert_array_equal(bold, means == means.max(axis=0))


def test_table1_booktabs_structure(results_tree: Tree) -> None:
    tex = table1_tex(load_results(results_tree.paths, results_tree.grid))
    lines = tex.splitlines()
    assert r"\begin{tabular}{lcccccc}" in lines
    assert r"\multicolumn{3}{c}{Synth-Boxes (MaxBoxAcc)}" in tex
    assert r"\multicolumn{3}{c}{Synth-Masks (PxAP)}" in tex
    assert r"\cmidrule(lr){2-4} \cmidrule(lr){5-7}" in lines
    assert lines.index(r"\toprule") < lines.index(r"\bottomrule")
    # the baseline block and the F-CAM block are separated by a rule
    assert lines.count(r"\midrule") == 2
    assert r"\label{tab:table1}" in lines


def test_grid_order_is_the_params_order(results_tree: Tree, parse_tex: ParseTex) -> None:
    grid = Grid(("synth_masks",), ("resnet50",), ("gradcam", "cam"), (0, 1, 2))
    paths = [p for p in results_tree.paths if "/synth_masks/resnet50/" in p.as_posix()]
    tex = table1_tex(load_results(paths, grid))
    rows = parse_tex(tex)
    assert list(rows) == ["", "Method", "GradCAM", "CAM", "GradCAM + F-CAM", "CAM + F-CAM"]
    assert rows["Method"] == ["ResNet50"]  # no mean over a single backbone
    assert "Synth-Boxes" not in tex
    assert r"\begin{tabular}{lc}" in tex


def test_table2_top1_top5(results_tree: Tree, parse_tex: ParseTex) -> None:
    results = load_results(results_tree.paths, results_tree.grid)
    tex = table2_tex(results)  # the mask dataset is left out
    assert "Synth-Masks" not in tex
    assert r"\multicolumn{4}{c}{Synth-Boxes}" in tex
    assert r"\multicolumn{2}{c}{Top-1 Loc} & \multicolumn{2}{c}{Top-5 Loc}" in tex
    rows = parse_tex(tex)
    assert rows["Method"] == ["VGG16", "ResNet50"] * 2
    for method, variant, title in (("cam", "baseline", "CAM"), ("gradcam", "fcam", "GradCAM + F-CAM")):
        expected = [
            _cell(results.values("synth_boxes", b, method, variant, metric))
            for metric in ("top1_loc", "top5_loc")
            for b in ("vgg16", "resnet50")
        ]
        assert [c.replace(r"\textbf{", "").replace("}", "", 1) for c in rows[title]] == expected


def test_table2_null_metric(tmp_path: Path, write_metrics, parse_tex: ParseTex) -> None:
    paths = [
        write_metrics(tmp_path, "cub", "vgg16", "cam", "baseline", metrics=_boxes(50.0, top1_loc=None)),
        write_metrics(tmp_path, "cub", "vgg16", "cam", "fcam", metrics=_boxes(60.0)),
    ]
    rows = parse_tex(table2_tex(load_results(paths, Grid(("cub",), ("vgg16",), ("cam",), (0,)))))
    assert rows["CAM"] == ["--", "50.0"]
    assert rows["CAM + F-CAM"] == [r"\textbf{60.0}", r"\textbf{60.0}"]


def test_table2_needs_a_box_dataset(results_tree: Tree) -> None:
    grid = Grid(("synth_masks",), ("vgg16", "resnet50"), ("cam", "gradcam"), (0, 1, 2))
    paths = [p for p in results_tree.paths if "/synth_masks/" in p.as_posix()]
    with pytest.raises(ConfigError, match="box dataset"):
        table2_tex(load_results(paths, grid))


def test_tables_need_both_variants(tmp_path: Path, write_metrics) -> None:
    path = write_metrics(tmp_path, "cub", "vgg16", "cam", "pce", metrics=_boxes(50.0), setting=None)
    grid = Grid(("cub",), ("vgg16",), ("cam",), (0,), variants=("pce",))
    with pytest.raises(ConfigError, match="variants must be"):
        table1_tex(load_results([path], grid))


def test_write_tables_atomic_output(results_tree: Tree, tmp_path: Path) -> None:
    out = write_table1(results_tree.paths, tmp_path / "reports" / "table1.tex", grid=results_tree.grid)
    assert out.read_text().startswith("% Generated by fcam.report.tables.table1_tex")
    out2 = write_table2(results_tree.paths, tmp_path / "reports" / "table2.tex", grid=results_tree.grid)
    assert r"\label{tab:table2}" in out2.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["table1.tex", "table2.tex"]  # no temporary


def test_write_table_missing_listed_file(results_tree: Tree, tmp_path: Path) -> None:
    gone = results_tree.paths[5]
    gone.unlink()
    out = tmp_path / "reports" / "table1.tex"
    with pytest.raises(DataError, match="cannot read metrics JSON") as info:
        write_table1(results_tree.paths, out, grid=results_tree.grid)
    assert str(gone) in str(info.value)
    assert not out.exists()
