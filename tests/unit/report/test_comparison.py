"""The Markdown comparison: ours (over seeds) beside the paper, paired F-CAM gains, bimodality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fcam.errors import DataError
from fcam.report.comparison import comparison_markdown, noise_verdict, write_comparison
from fcam.report.results import Grid, load_results

from .conftest import SETTING, Tree

EDGES = np.linspace(0.0, 1.0, 51).tolist()


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


def _masks(pxap: float) -> dict[str, float]:
    return {"pxap": pxap, "classification_top1": 1.0}


def _hist(**bins: int) -> dict[str, list]:
    """A histogram whose foreground and all-pixel counts are ``b<k>=count`` (or 1 in every bin)."""
    counts = [1] * 50 if not bins else [0] * 50
    for name, count in bins.items():
        counts[int(name[1:])] = count
    return {"edges": EDGES, "counts": counts, "counts_fg": counts, "counts_bg": [0] * 50}


@pytest.fixture
def cub_results(tmp_path: Path, write_metrics) -> tuple[list[Path], Grid]:
    """CUB and OpenImages, ResNet50, CAM, seeds 0-2, with hand-chosen values (see the tests)."""
    root, paths = tmp_path / "ev", []
    cub = {
        # best: baseline 60/70/80, F-CAM 65/75/85 -> paired gains 5, 5, 5; last 64/75/83 -> 4, 5, 3
        "baseline": [
            (_boxes(60.0, 40.0, 50.0), None),
            (_boxes(70.0, 50.0, 60.0), None),
            (_boxes(80.0, 60.0, 70.0), None),
        ],
        "fcam": [
            (_boxes(65.0, 41.0, 61.0), _boxes(64.0, 41.0, 61.0)),
            (_boxes(75.0, 50.0, 70.0), _boxes(75.0, 50.0, 70.0)),
            (_boxes(85.0, 59.0, 79.0), _boxes(83.0, 59.0, 79.0)),
        ],
    }
    histograms = {
        "baseline": [_hist()] * 3,
        "fcam": [_hist(b0=1, b49=1), _hist(b0=1, b49=1), _hist(b0=1, b25=1)],
    }
    for variant, per_seed in cub.items():
        for seed, (best, last) in enumerate(per_seed):
            fields = {"metrics_last": last} if last else {}
            paths.append(
                write_metrics(
                    root,
                    "cub",
                    "resnet50",
                    "cam",
                    variant,
                    seed=seed,
                    metrics=best,
                    preset="paper",
                    histogram=histograms[variant][seed],
                    **fields,
                )
            )
    # OpenImages: best 70/70/70 -> 69/70/74 (gains -1, 0, 4); last 60/61/62 (gains -10, -9, -8)
    settings = [SETTING, {"name": "nbg0.2-alpha0.5", "bg_fraction": 0.2, "pce_weight": 0.5}, SETTING]
    for seed in range(3):
        paths.append(
            write_metrics(
                root,
                "openimages",
                "resnet50",
                "cam",
                "baseline",
                seed=seed,
                metrics=_masks(70.0),
                preset="paper",
            )
        )
        paths.append(
            write_metrics(
                root,
                "openimages",
                "resnet50",
                "cam",
                "fcam",
                seed=seed,
                preset="paper",
                metrics=_masks([69.0, 70.0, 74.0][seed]),
                metrics_last=_masks(60.0 + seed),
                setting=settings[seed],
            )
        )
    return paths, Grid(("cub", "openimages"), ("resnet50",), ("cam",), (0, 1, 2))


def test_noise_rule() -> None:
    assert noise_verdict([5.0, 5.0, 5.0]) == "beyond noise"  # mean 5 > std 0
    assert noise_verdict([-1.0, 0.0, 4.0]) == "within noise"  # mean 1 <= std sqrt(7) = 2.65
    assert noise_verdict([1.0, 3.0]) == "beyond noise"  # mean 2 > std 1.41
    assert noise_verdict([0.0, 2.0]) == "within noise"  # mean 1 <= std 1.41
    assert noise_verdict([-10.0, -9.0, -8.0]) == "loss beyond noise"
    assert noise_verdict([1.0, 1.0]) == "beyond noise"
    assert noise_verdict([0.0, 0.0]) == "within noise"  # |0| <= 0
    assert noise_verdict([12.0]) == "n/a"  # one seed: no spread to judge by
    assert noise_verdict([1.0, float("nan")]) == "--"


def test_real_dataset_side_by_side(cub_results: tuple[list[Path], Grid]) -> None:
    paths, grid = cub_results
    text = comparison_markdown(load_results(paths, grid), preset="paper", data_note="CUB test split")
    assert "preset `paper`; data: CUB test split" in text
    assert "**Seeds**: n = 3 seeds (0, 1, 2)" in text
    assert "Not comparable" not in text
    t1_cub, gain_cub, t1_oi, gain_oi, top1, _, top5, _, bimodal = _tables(text)
    # paper: CAM 71.5 -> 90.3 with ResNet50 on CUB; diff from our mean
    assert t1_cub["CAM"] == {
        "ResNet50 ours": "70.0 ± 10.0",
        "ResNet50 paper": "71.5",
        "ResNet50 diff": "-1.5",
    }
    assert t1_cub["CAM + F-CAM"] == {
        "ResNet50 ours": "75.0 ± 10.0",
        "ResNet50 paper": "90.3",
        "ResNet50 diff": "-15.3",
    }
    # paired by seed the gain is +5 +- 0, beyond noise; paired otherwise (F-CAM's seeds against the
    # baseline's in reverse) the same numbers give -15, 5, 25: +5 +- 20, within noise
    assert noise_verdict(np.array([65.0, 75.0, 85.0]) - np.array([80.0, 70.0, 60.0])) == "within noise"
    assert gain_cub["CAM, ResNet50"] == {
        "baseline": "70.0 ± 10.0",
        "F-CAM best": "75.0 ± 10.0",
        "F-CAM last": "74.0 ± 9.5",  # 64, 75, 83: std sqrt(91)
        "gain best": "+5.0 ± 0.0",
        "verdict best": "beyond noise",
        "gain last": "+4.0 ± 1.0",  # 4, 5, 3
        "verdict last": "beyond noise",
        "gain paper": "+18.8",
        "setting (n-, alpha)": "n- 0.1, alpha 1 (every seed)",
    }
    # OpenImages CAM ResNet50: 56.8 -> 72.1 in the paper
    assert t1_oi["CAM"] == {"ResNet50 ours": "70.0 ± 0.0", "ResNet50 paper": "56.8", "ResNet50 diff": "+13.2"}
    oi = gain_oi["CAM, ResNet50"]
    assert (oi["gain best"], oi["verdict best"]) == ("+1.0 ± 2.6", "within noise")  # -1, 0, 4
    assert (oi["gain last"], oi["verdict last"]) == ("-9.0 ± 1.0", "loss beyond noise")
    assert oi["setting (n-, alpha)"] == (
        "seed 0: n- 0.1, alpha 1; seed 1: n- 0.2, alpha 0.5; seed 2: n- 0.1, alpha 1"
    )
    assert "**F-CAM gain beyond noise in 1 of 2 cells** (Table 1 metrics, best checkpoint)" in text
    assert "F-CAM gain beyond noise in 0 of 1 cells (best checkpoint; last checkpoint: 0 of 1)" in text
    # Table 2, CUB CAM ResNet50: Top-1 47.8 -> 59.1, Top-5 66.5 -> 82.6
    assert top1["CAM"] == {"ResNet50 ours": "50.0 ± 10.0", "ResNet50 paper": "47.8", "ResNet50 diff": "+2.2"}
    assert top1["CAM + F-CAM"]["ResNet50 ours"] == "50.0 ± 9.0"
    assert top5["CAM + F-CAM"] == {
        "ResNet50 ours": "70.0 ± 9.0",
        "ResNet50 paper": "82.6",
        "ResNet50 diff": "-12.6",
    }
    # bimodality: uniform baseline (outer 0.2, b = 0.556); F-CAM two-point (b = 1), outer 1, 1, 0.5
    assert bimodal["CUB, CAM, ResNet50"] == {
        "fg outer mass baseline": "0.20",
        "fg outer mass F-CAM": "0.83",
        "b fg baseline": "0.56",
        "b fg F-CAM": "1.00",
        "b all baseline": "0.56",
        "b all F-CAM": "1.00",
    }
    assert "F-CAM's fg outer mass above the baseline's in 2 of 2 cells" in text
    assert "b = (g² + 1) / K" in text
    assert "|mean| <= std" in text  # the noise rule is stated


def test_one_seed_no_spread(tmp_path: Path, write_metrics) -> None:
    root = tmp_path / "ev"
    paths = [
        write_metrics(root, "cub", "vgg16", "cam", "baseline", seed=4, metrics=_boxes(60.0, 30.0, 40.0)),
        write_metrics(root, "cub", "vgg16", "cam", "fcam", seed=4, metrics=_boxes(72.26, 30.0, 40.0)),
    ]
    text = comparison_markdown(
        load_results(paths, Grid(("cub",), ("vgg16",), ("cam",), (4,))), preset="default", data_note="x"
    )
    assert "one seed (4)" in text
    assert "±" not in text.split("## Table 1")[1].split("## Bimodality")[0]
    gain = _tables(text)[1]["CAM, VGG16"]
    assert gain["gain best"] == "+12.3"
    assert gain["verdict best"] == "n/a"
    assert gain["setting (n-, alpha)"] == "n- 0.1, alpha 1"
    assert "**F-CAM gain beyond noise in 0 of 1 cells**" in text


def test_synthetic_marked_not_comparable(results_tree: Tree) -> None:
    results = load_results(results_tree.paths, results_tree.grid)
    text = comparison_markdown(results, preset="default", data_note="fcam synthetic benchmark")
    assert "**Not comparable.** Synth-Boxes, Synth-Masks" in text
    assert " diff" not in text.split("## Table 1")[1]  # no difference is computed for synthetic data
    t1_boxes = _tables(text)[0]
    row = t1_boxes["GradCAM + F-CAM"]
    assert set(row) == {"VGG16 ours", "VGG16 paper CUB†", "ResNet50 ours", "ResNet50 paper CUB†"}
    assert row["VGG16 paper CUB†"] == "87.5"  # the paper's GradCAM + F-CAM, VGG16, CUB
    values = results.values("synth_boxes", "vgg16", "gradcam", "fcam", "max_box_acc")
    assert row["VGG16 ours"] == f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"
    t1_masks = _tables(text)[2]
    assert t1_masks["CAM"]["ResNet50 paper OpenImages†"] == "56.8"
    assert "images per dataset: Synth-Boxes 300, Synth-Masks 300" in text
    gains = _tables(text)[1]
    assert list(gains) == ["CAM, VGG16", "CAM, ResNet50", "GradCAM, VGG16", "GradCAM, ResNet50"]
    assert "gain paper CUB†" in gains["CAM, VGG16"]


def test_gain_is_paired_by_seed(results_tree: Tree) -> None:
    results = load_results(results_tree.paths, results_tree.grid)
    text = comparison_markdown(results, preset="default", data_note="synthetic")
    gain = _tables(text)[1]
    beyond = 0
    for method, title in (("cam", "CAM"), ("gradcam", "GradCAM")):
        for backbone, bb in (("vgg16", "VGG16"), ("resnet50", "ResNet50")):
            g = results.values("synth_boxes", backbone, method, "fcam", "max_box_acc") - results.values(
                "synth_boxes", backbone, method, "baseline", "max_box_acc"
            )
            mean, std = g.mean(), g.std(ddof=1)
            assert gain[f"{title}, {bb}"]["gain best"] == f"{mean:+.1f} ± {std:.1f}"
            beyond += mean > std
    assert f"F-CAM gain beyond noise in {beyond} of 4 cells (best checkpoint" in text


def test_mean_only_with_all_backbones(tmp_path: Path, write_metrics) -> None:
    root, paths = tmp_path / "ev", []
    for seed in (0, 1):
        for i, backbone in enumerate(("vgg16", "inceptionv3", "resnet50")):
            for variant in ("baseline", "fcam"):
                value = 80.0 + i + 3 * seed  # per-seed means over backbones: 81, 84
                paths.append(
                    write_metrics(
                        root,
                        "cub",
                        backbone,
                        "xgradcam",
                        variant,
                        seed=seed,
                        metrics=_boxes(value, 20.0, 50.0),
                    )
                )
    grid = Grid(("cub",), ("vgg16", "inceptionv3", "resnet50"), ("xgradcam",), (0, 1))
    t1 = _tables(comparison_markdown(load_results(paths, grid), preset="default", data_note="x"))[0]
    # std over seeds of the per-seed means 81, 84: 3 / sqrt(2) = 2.1
    assert t1["XGradCAM + F-CAM"]["Mean ours"] == "82.5 ± 2.1"
    # the printed mean (88.8), not the paper row's average (87.2)
    assert t1["XGradCAM + F-CAM"]["Mean paper"] == "88.8"
    assert t1["XGradCAM + F-CAM"]["Mean diff"] == "-6.3"


def test_preset_mismatch_names_a_file(results_tree: Tree) -> None:
    with pytest.raises(DataError, match=r"metrics\.json: produced by preset\(s\) \['default'\], not 'paper'"):
        comparison_markdown(
            load_results(results_tree.paths, results_tree.grid), preset="paper", data_note="x"
        )


def test_missing_curves_named(results_tree: Tree, tmp_path: Path) -> None:
    curves = results_tree.paths[7].with_name("curves.json")
    curves.unlink()
    out = tmp_path / "reports" / "comparison.md"
    with pytest.raises(DataError, match="cannot read curves JSON") as info:
        write_comparison(results_tree.paths, out, grid=results_tree.grid, preset="default")
    assert str(curves) in str(info.value)
    assert not out.exists()


def test_write_comparison_default_note(results_tree: Tree, tmp_path: Path) -> None:
    out = write_comparison(
        results_tree.paths, tmp_path / "reports" / "comparison.md", grid=results_tree.grid, preset="default"
    )
    text = out.read_text()
    assert "fcam's built-in synthetic box benchmark" in text
    assert text.startswith("# fcam results beside the published F-CAM numbers")


def test_write_comparison_missing_listed_file(results_tree: Tree, tmp_path: Path) -> None:
    gone = results_tree.paths[-1]
    gone.unlink()
    with pytest.raises(DataError, match="cannot read metrics JSON") as info:
        write_comparison(results_tree.paths, tmp_path / "c.md", grid=results_tree.grid, preset="default")
    assert str(gone) in str(info.value)


def test_a_real_dataset_off_the_protocols_split_size_is_flagged(tmp_path: Path, write_metrics) -> None:
    """A subset mirror (or a truncated split) must not pass for the paper's data."""
    root = tmp_path / "ev"
    grid = Grid(("cub", "openimages"), ("resnet50",), ("cam",), (0,))

    def paths(cub_images: int) -> list[Path]:
        return [
            write_metrics(root, ds, "resnet50", "cam", variant, preset="paper", num_images=n)
            for ds, n in (("cub", cub_images), ("openimages", 5_000))
            for variant in ("baseline", "fcam")
        ]

    text = comparison_markdown(load_results(paths(3), grid), preset="paper", data_note="x")
    assert "images per dataset: CUB 3, OpenImages 5000" in text
    assert "> **Not the protocol's split.** Images evaluated: CUB 3 of 5,794 (the protocol's count)" in text
    assert "OpenImages 5,000 of" not in text  # the full test split is not flagged
    full = comparison_markdown(load_results(paths(5_794), grid), preset="paper", data_note="x")
    assert "Not the protocol's split" not in full


def test_default_data_note_names_no_split_size() -> None:
    # the number of images comes from the records ("images per dataset"), never from a constant
    from fcam.report.comparison import default_data_note

    assert default_data_note(["cub", "openimages"]) == (
        "CUB-200-2011 with the wsolevaluation metadata; OpenImages30k with the wsolevaluation metadata"
    )
