"""The Markdown comparison of our numbers with the published ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcam.errors import DataError
from fcam.report.comparison import comparison_markdown, write_comparison
from fcam.report.tables import collect_metrics


def _tables(markdown: str) -> list[dict[str, dict[str, str]]]:
    """Every Markdown table as {row label: {column header: cell}}, in document order."""
    tables, header = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
            tables.append({})
        elif not cells[0].startswith(":---"):
            tables[-1][cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return tables


def _boxes(loc: float, top1: float, top5: float) -> dict[str, float]:
    return {
        "max_box_acc": loc,
        "max_box_acc_v2": loc - 5,
        "top1_loc": top1,
        "top5_loc": top5,
        "gt_known_loc": loc,
        "classification_top1": 75.0,
    }


@pytest.fixture
def cub_results(tmp_path: Path, write_metrics) -> Path:
    root = tmp_path / "ev"
    write_metrics(
        root, "cub", "resnet50", "cam", "baseline", metrics=_boxes(70.04, 47.8, 60.0), preset="paper"
    )
    write_metrics(root, "cub", "resnet50", "cam", "fcam", metrics=_boxes(91.0, 50.25, 82.6), preset="paper")
    write_metrics(
        root,
        "openimages",
        "resnet50",
        "cam",
        "baseline",
        metrics={"pxap": 60.0, "classification_top1": 1.0},
        preset="paper",
    )
    return root


def test_real_dataset_side_by_side(cub_results: Path) -> None:
    text = comparison_markdown(collect_metrics(cub_results), preset="paper", data_note="CUB test split")
    assert "preset `paper`; data: CUB test split" in text
    assert "Not comparable" not in text
    t1_cub, gain_cub, t1_oi, gain_oi, top1, _, top5, _ = _tables(text)
    # paper: CAM 71.5 -> 90.3 with ResNet50 on CUB
    assert t1_cub["CAM"] == {"ResNet50 ours": "70.0", "ResNet50 paper": "71.5", "ResNet50 diff": "-1.5"}
    assert t1_cub["CAM + F-CAM"] == {
        "ResNet50 ours": "91.0",
        "ResNet50 paper": "90.3",
        "ResNet50 diff": "+0.7",
    }
    assert gain_cub["CAM"] == {"ResNet50 ours": "+21.0", "ResNet50 paper": "+18.8"}
    # OpenImages CAM ResNet50: 56.8; our F-CAM run is missing
    assert t1_oi["CAM"] == {"ResNet50 ours": "60.0", "ResNet50 paper": "56.8", "ResNet50 diff": "+3.2"}
    assert t1_oi["CAM + F-CAM"] == {"ResNet50 ours": "--", "ResNet50 paper": "72.1", "ResNet50 diff": "--"}
    assert gain_oi["CAM"]["ResNet50 ours"] == "--"
    assert "above its baseline in 0 of 0" in text
    # Table 2, CUB CAM ResNet50: Top-1 47.8 -> 59.1, Top-5 66.5 -> 82.6; diff from unrounded 50.25
    assert top1["CAM"]["ResNet50 diff"] == "+0.0"
    assert top1["CAM + F-CAM"] == {"ResNet50 ours": "50.2", "ResNet50 paper": "59.1", "ResNet50 diff": "-8.9"}
    assert top5["CAM"] == {"ResNet50 ours": "60.0", "ResNet50 paper": "66.5", "ResNet50 diff": "-6.5"}
    assert top5["CAM + F-CAM"]["ResNet50 diff"] == "+0.0"


def test_synthetic_marked_not_comparable(results_tree: Path) -> None:
    df = collect_metrics(results_tree)
    text = comparison_markdown(df, preset="default", data_note="fcam synthetic benchmark, seed 0")
    assert "**Not comparable.** Synth-Boxes, Synth-Masks" in text
    assert " diff" not in text.split("## Table 1")[1]  # no difference is computed for synthetic data
    t1_boxes = _tables(text)[0]
    row = t1_boxes["GradCAM + F-CAM"]
    assert set(row) == {"VGG16 ours", "VGG16 paper CUB†", "ResNet50 ours", "ResNet50 paper CUB†"}
    assert row["VGG16 paper CUB†"] == "87.5"  # the paper's GradCAM + F-CAM, VGG16, CUB
    ours = df.query(
        "ds == 'synth_boxes' and backbone == 'vgg16' and method == 'gradcam' and variant == 'fcam'"
    )
    assert row["VGG16 ours"] == f"{ours['max_box_acc'].item():.1f}"
    t1_masks = _tables(text)[2]
    assert t1_masks["CAM"]["ResNet50 paper OpenImages†"] == "56.8"
    assert "images per dataset: Synth-Boxes 300, Synth-Masks 300" in text


def test_gain_and_win_count(results_tree: Path) -> None:
    df = collect_metrics(results_tree)
    text = comparison_markdown(df, preset="default", data_note="synthetic")
    gain = _tables(text)[1]
    sub = df[df.ds == "synth_boxes"].set_index(["backbone", "method", "variant"])["max_box_acc"]
    wins = 0
    for method, title in (("cam", "CAM"), ("gradcam", "GradCAM")):
        for backbone, bb in (("vgg16", "VGG16"), ("resnet50", "ResNet50")):
            delta = sub[(backbone, method, "fcam")] - sub[(backbone, method, "baseline")]
            assert gain[title][f"{bb} ours"] == f"{delta:+.1f}"
            wins += delta > 0
    assert f"F-CAM is above its baseline in {wins} of 4 (method, backbone) pairs" in text


def test_mean_only_with_all_backbones(tmp_path: Path, write_metrics) -> None:
    root = tmp_path / "ev"
    for i, backbone in enumerate(("vgg16", "inceptionv3", "resnet50")):
        write_metrics(root, "cub", backbone, "xgradcam", "fcam", metrics=_boxes(80.0 + i, 20.0, 50.0))
    t1 = _tables(comparison_markdown(collect_metrics(root), preset="default", data_note="x"))[0]
    # the printed mean (88.8), not the paper row's average (87.2)
    assert t1["XGradCAM + F-CAM"]["Mean ours"] == "81.0"
    assert t1["XGradCAM + F-CAM"]["Mean paper"] == "88.8"
    assert t1["XGradCAM + F-CAM"]["Mean diff"] == "-7.8"


def test_preset_mismatch_rejected(results_tree: Path) -> None:
    with pytest.raises(DataError, match="preset"):
        comparison_markdown(collect_metrics(results_tree), preset="paper", data_note="x")


def test_write_comparison_default_note(results_tree: Path, tmp_path: Path) -> None:
    out = write_comparison(results_tree, tmp_path / "reports" / "comparison.md", preset="default")
    text = out.read_text()
    assert "fcam's built-in synthetic box benchmark" in text
    assert text.startswith("# fcam results beside the published F-CAM numbers")
