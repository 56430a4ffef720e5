"""Reading the listed metrics.json files against the grid, and statistics over seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fcam.errors import ConfigError, DataError
from fcam.report.results import Grid, collect_metrics, format_mean_std, load_results, mean_std

from .conftest import SETTING, Tree


def _path(tree: Tree, ds: str, backbone: str, method: str, seed: int, variant: str) -> Path:
    return tree.root / ds / backbone / method / f"seed{seed}" / variant / "metrics.json"


def test_collect_metrics_one_row_per_file_in_grid_order(results_tree: Tree) -> None:
    df = collect_metrics(list(reversed(results_tree.paths)), results_tree.grid)  # listing order is free
    assert len(df) == 2 * 2 * 2 * 3 * 2
    row = df[
        (df.ds == "synth_boxes")
        & (df.backbone == "vgg16")
        & (df.method == "gradcam")
        & (df.seed == 2)
        & (df.variant == "fcam")
    ]
    record = json.loads(_path(results_tree, "synth_boxes", "vgg16", "gradcam", 2, "fcam").read_text())
    assert row["max_box_acc"].item() == record["metrics"]["max_box_acc"]
    assert row["top5_loc_last"].item() == record["metrics_last"]["top5_loc"]
    assert row["setting"].item() == SETTING["name"]
    assert row["bg_fraction"].item() == 0.1
    assert row["pce_weight"].item() == 1.0
    assert np.isnan(row["pxap"].item())  # a box dataset has no PxAP
    base = df[(df.variant == "baseline")]
    assert base["setting"].isna().all()
    assert base["max_box_acc_last"].isna().all()
    # grid order: datasets, backbones, methods, seeds, variants as the grid lists them
    assert list(df["ds"].unique()) == ["synth_boxes", "synth_masks"]
    assert list(df["backbone"].iloc[:12].unique()) == ["vgg16"]
    assert list(df["seed"].iloc[:6]) == [0, 0, 1, 1, 2, 2]
    assert list(df["variant"].iloc[:2]) == ["baseline", "fcam"]


def test_values_in_seed_order(tmp_path: Path, write_metrics) -> None:
    grid = Grid(("cub",), ("resnet50",), ("cam",), seeds=(2, 0), variants=("baseline", "fcam"))
    paths = []
    for seed, value in ((0, 10.0), (2, 30.0)):
        for variant in ("baseline", "fcam"):
            metrics = {
                k: value for k in ("max_box_acc", "max_box_acc_v2", "top1_loc", "top5_loc", "gt_known_loc")
            }
            paths.append(
                write_metrics(
                    tmp_path,
                    "cub",
                    "resnet50",
                    "cam",
                    variant,
                    seed=seed,
                    metrics=metrics | {"classification_top1": None},
                )
            )
    results = load_results(paths, grid)
    np.testing.assert_array_equal(
        results.values("cub", "resnet50", "cam", "fcam", "max_box_acc"), [30.0, 10.0]
    )
    assert np.isnan(results.values("cub", "resnet50", "cam", "fcam", "classification_top1")).all()
    assert [s.seed for s in results.settings("cub", "resnet50", "cam")] == [2, 0]
    assert results.settings("cub", "resnet50", "cam", "baseline") == []


def test_metrics_paths_from_the_grid(results_tree: Tree) -> None:
    assert results_tree.grid.metrics_paths(results_tree.root) == results_tree.paths
    assert results_tree.paths[1].relative_to(results_tree.root).as_posix() == (
        "synth_boxes/vgg16/cam/seed0/fcam/metrics.json"
    )


def test_missing_listed_file_named(results_tree: Tree) -> None:
    gone = _path(results_tree, "synth_masks", "resnet50", "cam", 1, "fcam")
    gone.unlink()
    with pytest.raises(DataError, match="cannot read metrics JSON") as info:
        collect_metrics(results_tree.paths, results_tree.grid)
    assert str(gone) in str(info.value)


def test_unlisted_evaluation_named(results_tree: Tree) -> None:
    left_out = _path(results_tree, "synth_boxes", "vgg16", "gradcam", 1, "baseline")
    paths = [p for p in results_tree.paths if p != left_out]
    with pytest.raises(
        DataError, match=r"no metrics.json listed for synth_boxes/vgg16/gradcam/seed1/baseline"
    ):
        collect_metrics(paths, results_tree.grid)


def test_file_outside_the_grid_rejected(results_tree: Tree, write_metrics) -> None:
    stale = write_metrics(results_tree.root, "synth_boxes", "vgg16", "layercam", "fcam", seed=0)
    with pytest.raises(DataError, match="outside the enabled grid") as info:
        collect_metrics([*results_tree.paths, stale], results_tree.grid)
    assert str(stale) in str(info.value)
    old_seed = write_metrics(results_tree.root, "synth_boxes", "vgg16", "cam", "fcam", seed=7)
    with pytest.raises(DataError, match=r"seed7/fcam is outside the enabled grid"):
        collect_metrics([*results_tree.paths, old_seed], results_tree.grid)


def test_duplicate_listed_file_rejected(results_tree: Tree) -> None:
    with pytest.raises(DataError, match="a second result for synth_boxes/vgg16/cam/seed0/baseline"):
        collect_metrics([*results_tree.paths, results_tree.paths[0]], results_tree.grid)


def test_single_path_instead_of_a_list(results_tree: Tree) -> None:
    with pytest.raises(ConfigError, match=r"sequence of metrics\.json paths"):
        collect_metrics(results_tree.paths[0], results_tree.grid)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: "{not json", "cannot read metrics JSON"),
        (lambda r: json.dumps([r]), "expected a JSON object"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "preset"}), "key 'preset' missing"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "seed"}), "key 'seed' missing"),
        (lambda r: json.dumps(r | {"seed": "0"}), "'seed' must be int"),
        (lambda r: json.dumps(r | {"num_images": "300"}), "'num_images' must be int"),
        (lambda r: json.dumps(r | {"kind": "masks"}), "'kind' = 'masks' but synth_boxes is a boxes dataset"),
        (lambda r: json.dumps(r | {"method": "gradcam"}), "the file says .*gradcam.* but its path says"),
        (lambda r: json.dumps(r | {"seed": 1}), "the file says synth_boxes/resnet50/cam/seed1/fcam but"),
        (
            lambda r: json.dumps(r | {"variant": "baseline"}),
            "its path says synth_boxes/resnet50/cam/seed0/fcam",
        ),
        (lambda r: json.dumps(r | {"variant": "pce"}), "'variant' = 'pce' is not one of"),
        (lambda r: json.dumps(r | {"backbone": "resnet18"}), "'backbone' = 'resnet18' is not one of"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "setting"}), "key 'setting' missing"),
        (lambda r: json.dumps(r | {"setting": None}), "'setting' is null, but an fcam evaluation"),
        (lambda r: json.dumps(r | {"setting": "nbg0.1"}), "'setting' must be an object or null"),
        (
            lambda r: json.dumps(r | {"setting": {"name": "x", "bg_fraction": 0.1}}),
            "'setting.pce_weight' missing",
        ),
        (
            lambda r: json.dumps(r | {"setting": SETTING | {"bg_fraction": 1.5}}),
            r"'setting.bg_fraction' must be",
        ),
        (lambda r: json.dumps(r | {"metrics": {"pxap": 50.0}}), "'metrics.max_box_acc' missing"),
        (lambda r: json.dumps(r | {"metrics": r["metrics"] | {"top1_loc": 0.7 * 200}}), "not a percentage"),
        (lambda r: json.dumps(r | {"metrics": r["metrics"] | {"top5_loc": "high"}}), "must be a number"),
        (
            lambda r: json.dumps(r).replace('"max_box_acc": ', '"max_box_acc": NaN, "x": ', 1),
            "not a percentage",
        ),
        (lambda r: json.dumps(r | {"metrics_last": {}}), "'metrics_last.max_box_acc' missing"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "metrics_last"}), "'metrics_last' missing"),
    ],
)
def test_malformed_metrics_named(results_tree: Tree, mutate, message: str) -> None:
    path = _path(results_tree, "synth_boxes", "resnet50", "cam", 0, "fcam")
    path.write_text(mutate(json.loads(path.read_text())))
    with pytest.raises(DataError, match=message) as info:
        collect_metrics(results_tree.paths, results_tree.grid)
    assert str(path) in str(info.value)


def test_baseline_has_no_setting(results_tree: Tree) -> None:
    path = _path(results_tree, "synth_masks", "vgg16", "gradcam", 2, "baseline")
    path.write_text(json.dumps(json.loads(path.read_text()) | {"setting": SETTING}))
    with pytest.raises(DataError, match="'setting' must be null for the baseline") as info:
        collect_metrics(results_tree.paths, results_tree.grid)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"datasets": ()}, "no datasets"),
        ({"datasets": ("cub", "cub")}, "datasets must be unique"),
        ({"datasets": "cub"}, "sequence of names"),
        ({"backbones": ("resnet18",)}, "unknown backbone 'resnet18'"),
        ({"methods": ("scorecam",)}, "unknown method 'scorecam'"),
        ({"seeds": ()}, "no seeds"),
        ({"seeds": (0, -1)}, "integer >= 0, got -1"),
        ({"seeds": (0, True)}, "integer >= 0, got True"),
        ({"seeds": (1, 1)}, "seeds must be unique"),
        ({"variants": ("pce", "Full/x")}, "'Full/x' is not a name"),
    ],
)
def test_grid_checked(fields: dict, message: str) -> None:
    base = {"datasets": ("cub",), "backbones": ("resnet50",), "methods": ("cam",), "seeds": (0,)}
    with pytest.raises(ConfigError, match=message):
        Grid(**(base | fields))


def test_grid_takes_lists_and_is_frozen() -> None:
    grid = Grid(["cub"], ["vgg16", "resnet50"], ["cam"], [0, 1, 2])
    assert grid.seeds == (0, 1, 2)
    assert grid.variants == ("baseline", "fcam")
    assert grid.seeds_text() == "n = 3 seeds (0, 1, 2)"
    assert Grid(["cub"], ["vgg16"], ["cam"], [5]).seeds_text() == "one seed (5)"
    assert len(list(grid.evaluations())) == 2 * 3 * 2
    with pytest.raises(AttributeError):
        grid.seeds = (0,)  # type: ignore[misc]


def test_mean_std_hand_computed() -> None:
    # 70, 72, 74: mean 72, sample variance ((-2)^2 + 0 + 2^2) / 2 = 4 -> std 2
    assert mean_std([70.0, 72.0, 74.0]) == (72.0, 2.0)
    assert format_mean_std([70.0, 72.0, 74.0]) == "72.0 ± 2.0"
    # 80, 83, 89: mean 84, variance (16 + 1 + 25) / 2 = 21 -> std 4.583
    mean, std = mean_std([80.0, 83.0, 89.0])
    assert mean == 84.0
    assert std == pytest.approx(math.sqrt(21))
    assert format_mean_std([80.0, 83.0, 89.0], pm=r" $\pm$ ") == r"84.0 $\pm$ 4.6"
    # one seed: the mean alone
    assert mean_std([71.25]) == (71.25, pytest.approx(math.nan, nan_ok=True))
    assert format_mean_std([71.25]) == "71.2"
    # a missing seed: no mean
    assert format_mean_std([70.0, math.nan, 74.0]) == "--"
    assert format_mean_std([5.0, 5.0, 5.0], signed=True) == "+5.0 ± 0.0"
    assert format_mean_std([-0.01, 0.0, 0.0], signed=True) == "+0.0 ± 0.0"
    assert format_mean_std([-1.0, -2.0, -3.0], signed=True) == "-2.0 ± 1.0"
