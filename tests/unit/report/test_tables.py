"""Reading metrics.json files and the LaTeX of Tables 1 and 2."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fcam.errors import ConfigError, DataError
from fcam.report.tables import collect_metrics, table1_tex, table2_tex, write_table1

ParseTex = Callable[[str], dict[str, list[str]]]


def _number(cell: str) -> float:
    return math.nan if cell == "--" else float(cell.removeprefix(r"\textbf{").removesuffix("}"))


def _json(root: Path, ds: str, backbone: str, method: str, variant: str) -> dict:
    return json.loads((root / ds / backbone / method / variant / "metrics.json").read_text())


def test_collect_metrics_one_row_per_file(results_tree: Path) -> None:
    df = collect_metrics(results_tree)
    assert len(df) == 2 * 2 * 2 * 2
    row = df[
        (df.ds == "synth_boxes")
        & (df.backbone == "vgg16")
        & (df.method == "gradcam")
        & (df.variant == "fcam")
    ]
    record = _json(results_tree, "synth_boxes", "vgg16", "gradcam", "fcam")
    assert row["max_box_acc"].item() == record["metrics"]["max_box_acc"]
    assert row["top5_loc_last"].item() == record["metrics_last"]["top5_loc"]
    assert row["num_images"].item() == 300
    assert np.isnan(row["pxap"].item())  # a box dataset has no PxAP
    # canonical order: datasets as in DATASET_KINDS, backbones as in BACKBONES, baseline before fcam
    assert list(df["ds"].unique()) == ["synth_boxes", "synth_masks"]
    assert list(df["backbone"].iloc[:8].unique()) == ["vgg16", "resnet50"]
    assert list(df["variant"].iloc[:2]) == ["baseline", "fcam"]


def test_table1_cells_means_and_bold(results_tree: Path, parse_tex: ParseTex) -> None:
    df = collect_metrics(results_tree)
    rows = parse_tex(table1_tex(df))
    # header: per dataset, vgg16, resnet50, mean
    assert rows["Method"] == ["VGG16", "ResNet50", "Mean"] * 2
    titles = ["CAM", "GradCAM", "CAM + F-CAM", "GradCAM + F-CAM"]
    assert [t for t in rows if t not in ("", "Method")] == titles
    keys = [("cam", "baseline"), ("gradcam", "baseline"), ("cam", "fcam"), ("gradcam", "fcam")]
    expected = np.zeros((4, 6))
    for i, (method, variant) in enumerate(keys):
        for j, (ds, metric) in enumerate((("synth_boxes", "max_box_acc"), ("synth_masks", "pxap"))):
            values = [
                _json(results_tree, ds, b, method, variant)["metrics"][metric] for b in ("vgg16", "resnet50")
            ]
            expected[i, 3 * j : 3 * j + 3] = [*values, sum(values) / 2]
    cells = [rows[t] for t in titles]
    got = np.array([[_number(c) for c in row] for row in cells])
    np.testing.assert_allclose(got, np.round(expected, 1), atol=1e-9)
    for row in cells:
        for cell in row:  # one decimal everywhere
            assert len(cell.removeprefix(r"\textbf{").removesuffix("}").split(".")[1]) == 1
    bold = np.array([[c.startswith(r"\textbf{") for c in row] for row in cells])
    np.testing.assert_array_equal(bold, got == got.max(axis=0))
    assert bold.sum(axis=0).min() >= 1


def test_table1_booktabs_structure(results_tree: Path) -> None:
    tex = table1_tex(collect_metrics(results_tree))
    lines = tex.splitlines()
    assert r"\begin{tabular}{lcccccc}" in lines
    assert r"\multicolumn{3}{c}{Synth-Boxes (MaxBoxAcc)}" in tex
    assert r"\multicolumn{3}{c}{Synth-Masks (PxAP)}" in tex
    assert r"\cmidrule(lr){2-4} \cmidrule(lr){5-7}" in lines
    assert lines.index(r"\toprule") < lines.index(r"\bottomrule")
    # the baseline block and the F-CAM block are separated by a rule
    assert lines.count(r"\midrule") == 2
    assert r"\label{tab:table1}" in lines


def test_table1_one_dataset_one_backbone(results_tree: Path, parse_tex: ParseTex) -> None:
    df = collect_metrics(results_tree)
    tex = table1_tex(df, datasets=["synth_masks"], backbones=["resnet50"], methods=["cam"])
    rows = parse_tex(tex)
    assert rows["Method"] == ["ResNet50"]  # no mean over a single backbone
    assert "Synth-Boxes" not in tex
    for variant, title in (("baseline", "CAM"), ("fcam", "CAM + F-CAM")):
        value = _json(results_tree, "synth_masks", "resnet50", "cam", variant)["metrics"]["pxap"]
        assert _number(rows[title][0]) == round(value, 1)
    assert r"\begin{tabular}{lc}" in tex


def test_table1_missing_cells(results_tree: Path, parse_tex: ParseTex) -> None:
    (results_tree / "synth_boxes" / "resnet50" / "cam" / "fcam" / "metrics.json").unlink()
    df = collect_metrics(results_tree)
    rows = parse_tex(
        table1_tex(df, methods=["cam", "layercam"], backbones=["vgg16", "inceptionv3", "resnet50"])
    )
    assert rows["Method"] == ["VGG16", "InceptionV3", "ResNet50", "Mean"] * 2
    assert rows["LayerCAM"] == ["--"] * 8
    assert rows["LayerCAM + F-CAM"] == ["--"] * 8
    # inceptionv3 was never run: its column is empty and every mean is missing
    assert all(rows[t][1] == "--" and rows[t][3] == "--" for t in ("CAM", "CAM + F-CAM"))
    assert rows["CAM + F-CAM"][2] == "--"  # the deleted file
    assert rows["CAM + F-CAM"][0] != "--"


def test_table1_ties_all_bold_and_null_metric(tmp_path: Path, write_metrics, parse_tex: ParseTex) -> None:
    root = tmp_path / "ev"
    write_metrics(root, "cub", "resnet50", "cam", "baseline", metrics={**_boxes(80.04)})
    write_metrics(root, "cub", "resnet50", "cam", "fcam", metrics={**_boxes(79.96)})
    write_metrics(root, "cub", "resnet50", "gradcam", "baseline", metrics={**_boxes(12.0), "top1_loc": None})
    rows = parse_tex(table1_tex(collect_metrics(root)))
    assert rows["CAM"] == [r"\textbf{80.0}"]
    assert rows["CAM + F-CAM"] == [r"\textbf{80.0}"]  # equal once printed: both bold
    assert rows["GradCAM"] == ["12.0"]
    assert rows["GradCAM + F-CAM"] == ["--"]
    rows2 = parse_tex(table2_tex(collect_metrics(root)))
    assert rows2["GradCAM"][0] == "--"  # null top1_loc


def _boxes(value: float) -> dict[str, float]:
    return {k: value for k in ("max_box_acc", "max_box_acc_v2", "top1_loc", "top5_loc", "gt_known_loc")} | {
        "classification_top1": 50.0
    }


def test_table2_top1_top5(results_tree: Path, parse_tex: ParseTex) -> None:
    df = collect_metrics(results_tree)
    tex = table2_tex(df)  # the mask dataset is left out
    assert "Synth-Masks" not in tex
    assert r"\multicolumn{4}{c}{Synth-Boxes}" in tex
    assert r"\multicolumn{2}{c}{Top-1 Loc} & \multicolumn{2}{c}{Top-5 Loc}" in tex
    rows = parse_tex(tex)
    assert rows["Method"] == ["VGG16", "ResNet50"] * 2
    for method, variant, title in (("cam", "baseline", "CAM"), ("gradcam", "fcam", "GradCAM + F-CAM")):
        expected = [
            _json(results_tree, "synth_boxes", b, method, variant)["metrics"][m]
            for m in ("top1_loc", "top5_loc")
            for b in ("vgg16", "resnet50")
        ]
        assert [_number(c) for c in rows[title]] == [round(v, 1) for v in expected]


def test_table2_needs_a_box_dataset(results_tree: Path) -> None:
    with pytest.raises(ConfigError, match="box dataset"):
        table2_tex(collect_metrics(results_tree), datasets=["synth_masks"])


def test_unknown_names_rejected(results_tree: Path) -> None:
    df = collect_metrics(results_tree)
    with pytest.raises(ConfigError, match="unknown datasets"):
        table1_tex(df, datasets=["imagenet"])
    with pytest.raises(ConfigError, match="unknown methods"):
        table1_tex(df, methods=["scorecam"])


def test_write_table1_atomic_output(results_tree: Path, tmp_path: Path) -> None:
    out = write_table1(results_tree, tmp_path / "reports" / "table1.tex", datasets=["synth_boxes"])
    assert out.read_text().startswith("% Generated by fcam.report.tables.table1_tex")
    assert [p.name for p in out.parent.iterdir()] == ["table1.tex"]  # no temporary left


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: "{not json", "cannot read metrics JSON"),
        (lambda r: json.dumps([r]), "expected a JSON object"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "preset"}), "key 'preset' missing"),
        (lambda r: json.dumps(r | {"num_images": "300"}), "'num_images' must be int"),
        (lambda r: json.dumps(r | {"kind": "masks"}), "'kind' = 'masks' but synth_boxes is a boxes dataset"),
        (lambda r: json.dumps(r | {"method": "gradcam"}), "lies elsewhere"),
        (lambda r: json.dumps(r | {"backbone": "resnet18"}), "'backbone' = 'resnet18' is not one of"),
        (lambda r: json.dumps(r | {"metrics": {"pxap": 50.0}}), "'metrics.max_box_acc' missing"),
        (lambda r: json.dumps(r | {"metrics": r["metrics"] | {"top1_loc": 0.7 * 200}}), "not a percentage"),
        (lambda r: json.dumps(r | {"metrics": r["metrics"] | {"top5_loc": "high"}}), "must be a number"),
        (lambda r: json.dumps(r).replace('"max_box_acc": ', '"max_box_acc": NaN, "x": '), "not a percentage"),
        (lambda r: json.dumps(r | {"metrics_last": {}}), "'metrics_last.max_box_acc' missing"),
    ],
)
def test_malformed_metrics_named(results_tree: Path, mutate, message: str) -> None:
    path = results_tree / "synth_boxes" / "resnet50" / "cam" / "baseline" / "metrics.json"
    path.write_text(mutate(json.loads(path.read_text())))
    with pytest.raises(DataError, match=message) as info:
        collect_metrics(results_tree)
    assert str(path) in str(info.value)


def test_empty_or_missing_results(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="results folder not found"):
        collect_metrics(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no <ds>/<backbone>/<method>/<variant>/metrics.json"):
        collect_metrics(tmp_path)
