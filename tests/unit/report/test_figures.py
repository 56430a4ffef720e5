"""Figures: the sample grid, accuracy against the threshold, histograms of map values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from fcam.errors import ConfigError, DataError
from fcam.io import save_npz
from fcam.report.figures import (
    _FN,
    _FP,
    _IGNORED,
    _TP,
    _mask_overlay,
    load_curves,
    load_samples,
    plot_accuracy_vs_tau,
    plot_histograms,
    plot_samples,
    write_figures,
)

from .conftest import EvalOutputs


def _check_pdf_png(paths: list[Path], min_width: int) -> None:
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    pdf, png = paths
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    assert len(data) > 5_000
    pixels = matplotlib.image.imread(png)
    assert pixels.ndim == 3
    assert pixels.shape[1] >= min_width
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    assert not list(pdf.parent.glob(".*.tmp"))  # nothing half-written left


@pytest.mark.parametrize("ds", ["synth_boxes", "synth_masks"])
def test_write_figures(eval_outputs: Callable[..., EvalOutputs], tmp_path: Path, ds: str) -> None:
    outputs = eval_outputs(ds, seed=3)
    paths = write_figures(
        tmp_path / "figures", ds=ds, backbone="resnet50", method="cam", **outputs.figure_inputs()
    )
    assert [p.name for p in paths] == [
        f"{ds}_resnet50_cam_{name}.{ext}"
        for name in ("samples", "accuracy_vs_tau", "histograms")
        for ext in ("pdf", "png")
    ]
    _check_pdf_png(paths[0:2], min_width=500 if ds == "synth_boxes" else 900)  # 3 or 5 panels per row
    _check_pdf_png(paths[2:4], min_width=400)
    _check_pdf_png(paths[4:6], min_width=600)
    samples_png = matplotlib.image.imread(paths[1])
    assert samples_png.shape[0] > 600  # three sample rows


def test_pdf_is_deterministic(eval_outputs: Callable[..., EvalOutputs], tmp_path: Path) -> None:
    outputs = eval_outputs("synth_boxes")
    curves = {v: load_curves(outputs.curves(v), "boxes") for v in ("baseline", "fcam")}
    first = plot_accuracy_vs_tau(curves, tmp_path / "a", kind="boxes")[0].read_bytes()
    second = plot_accuracy_vs_tau(curves, tmp_path / "b", kind="boxes")[0].read_bytes()
    assert first == second  # no creation date: DVC sees identical outputs for identical inputs


def test_single_variant_and_stem_with_dots(eval_outputs: Callable[..., EvalOutputs], tmp_path: Path) -> None:
    curves = load_curves(eval_outputs("synth_masks").curves("fcam"), "masks")
    paths = plot_histograms({"fcam": curves}, tmp_path / "run.v1_histograms")
    assert [p.name for p in paths] == ["run.v1_histograms.pdf", "run.v1_histograms.png"]
    paths = plot_accuracy_vs_tau({"fcam": curves}, tmp_path / "pr", kind="masks")
    assert all(p.is_file() for p in paths)
    with pytest.raises(ConfigError, match="variants"):
        plot_histograms({"ours": curves}, tmp_path / "x")
    with pytest.raises(ConfigError, match="kind"):
        plot_accuracy_vs_tau({"fcam": curves}, tmp_path / "x", kind="points")


def test_mask_overlay_colours() -> None:
    image = np.full((1, 2, 3, 3), 100, np.uint8)
    maps = np.array([[[0.9, 0.9, 0.1], [0.1, 0.9, 0.5]]])
    gt = np.array([[[True, False, True], [False, False, False]]])
    ignore = np.array([[[False, False, True], [True, False, False]]])
    out = _mask_overlay(image, maps, 0.5, gt, ignore)
    base = 100 / 255

    def tint(rgb: tuple[float, float, float]) -> np.ndarray:
        return 0.4 * base + 0.6 * np.array(rgb)

    np.testing.assert_allclose(out[0, 0, 0], tint(_TP))  # above tau, in the mask
    np.testing.assert_allclose(out[0, 0, 1], tint(_FP))  # above tau, outside
    np.testing.assert_allclose(out[0, 0, 2], tint(_FN))  # below tau, in the mask (ignore does not hide gt)
    np.testing.assert_allclose(out[0, 1, 0], tint(_IGNORED))
    np.testing.assert_allclose(out[0, 1, 1], tint(_FP))
    np.testing.assert_allclose(out[0, 1, 2], tint(_FP))  # map == tau counts as foreground (left-closed bins)


def test_samples_must_share_ids(eval_outputs: Callable[..., EvalOutputs], tmp_path: Path) -> None:
    folder = eval_outputs("synth_boxes").folder
    with np.load(folder / "fcam/samples.npz") as npz:
        arrays = dict(npz)
    arrays["ids"] = arrays["ids"][::-1]
    save_npz(folder / "fcam/samples.npz", **arrays)
    with pytest.raises(DataError, match="ids differ"):
        plot_samples(
            folder / "baseline/samples.npz", folder / "fcam/samples.npz", tmp_path / "s", kind="boxes"
        )
    assert not list(tmp_path.glob("s.*"))
    arrays["ids"] = arrays["ids"][::-1]
    arrays["images"] = 255 - arrays["images"]
    save_npz(folder / "fcam/samples.npz", **arrays)
    with pytest.raises(DataError, match="different images"):
        plot_samples(
            folder / "baseline/samples.npz", folder / "fcam/samples.npz", tmp_path / "s", kind="boxes"
        )
    with pytest.raises(ConfigError, match="max_rows"):
        plot_samples(
            folder / "baseline/samples.npz",
            folder / "fcam/samples.npz",
            tmp_path / "s",
            kind="boxes",
            max_rows=0,
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("pred_boxes"), r"arrays \['pred_boxes'\] missing"),
        (lambda a: a.update(maps=a["maps"] * 2), r"'maps' outside \[0, 1\]"),
        (lambda a: a.update(maps=np.where(a["maps"] > 0.5, np.nan, a["maps"])), "'maps' must be finite"),
        (lambda a: a.update(images=a["images"].astype(np.float32)), "'images' must be"),
        (lambda a: a.update(gt_boxes=a["gt_boxes"][..., :2]), "'gt_boxes' must be"),
        (lambda a: a.update(best_tau=np.array([0.1, 0.2])), "'best_tau' must be one"),
    ],
)
def test_malformed_samples_named(eval_outputs: Callable[..., EvalOutputs], change, message: str) -> None:
    path = eval_outputs("synth_boxes").samples("baseline")
    with np.load(path) as npz:
        arrays = dict(npz)
    change(arrays)
    save_npz(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_samples(path, "boxes")
    assert str(path) in str(info.value)


def test_unreadable_samples(tmp_path: Path) -> None:
    path = tmp_path / "samples.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read samples"):
        load_samples(path, "masks")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("tau"), "key 'tau' missing"),
        (lambda c: c["box_acc"].pop("50"), "key 'box_acc.50' missing"),
        (lambda c: c.update(top1_loc=c["top1_loc"][:-1]), "'top1_loc' has 999 values for 1000 thresholds"),
        (lambda c: c.update(box_acc_largest=[v * 2 for v in c["box_acc_largest"]]), r"outside \[0, 100\]"),
        (lambda c: c["histogram"].update(counts_fg=c["histogram"]["counts_fg"][:3]), "needs 50 counts"),
        (
            lambda c: c.update(
                tau=[], box_acc={"30": [], "50": [], "70": []}, box_acc_largest=[], top1_loc=[], top5_loc=[]
            ),
            "empty curves",
        ),
    ],
)
def test_malformed_curves_named(eval_outputs: Callable[..., EvalOutputs], change, message: str) -> None:
    path = eval_outputs("synth_boxes").curves("fcam")
    curves = json.loads(path.read_text())
    change(curves)
    path.write_text(json.dumps(curves))
    with pytest.raises(DataError, match=message) as info:
        load_curves(path, "boxes")
    assert str(path) in str(info.value)


def test_missing_inputs_named(eval_outputs: Callable[..., EvalOutputs], tmp_path: Path) -> None:
    outputs = eval_outputs("synth_masks")
    outputs.curves("fcam").unlink()
    with pytest.raises(DataError, match=r"curves\.json: cannot read") as info:
        write_figures(
            tmp_path / "out", ds="synth_masks", backbone="resnet50", method="cam", **outputs.figure_inputs()
        )
    assert str(outputs.curves("fcam")) in str(info.value)
    with pytest.raises(ConfigError, match="unknown dataset"):
        write_figures(
            tmp_path / "out", ds="imagenet", backbone="resnet50", method="cam", **outputs.figure_inputs()
        )
    assert not (tmp_path / "out").exists()


def test_inputs_must_be_this_cell_and_one_seed(
    eval_outputs: Callable[..., EvalOutputs], tmp_path: Path
) -> None:
    outputs = eval_outputs("synth_boxes", seed=0)
    inputs = outputs.figure_inputs()
    swapped = inputs | {"baseline_curves": inputs["fcam_curves"], "fcam_curves": inputs["baseline_curves"]}
    with pytest.raises(
        DataError, match="expected the baseline evaluation of synth_boxes/resnet50/cam"
    ) as info:
        write_figures(tmp_path, ds="synth_boxes", backbone="resnet50", method="cam", **swapped)
    assert str(inputs["fcam_curves"]) in str(info.value)
    with pytest.raises(DataError, match="expected the baseline evaluation of synth_boxes/resnet50/gradcam"):
        write_figures(tmp_path, ds="synth_boxes", backbone="resnet50", method="gradcam", **inputs)
    other_seed = eval_outputs("synth_boxes", seed=1)
    with pytest.raises(DataError, match=r"figure inputs of different seeds: .*\(seed0\).*\(seed1\)"):
        write_figures(
            tmp_path,
            ds="synth_boxes",
            backbone="resnet50",
            method="cam",
            **inputs | {"fcam_samples": other_seed.samples("fcam")},
        )
    flat = tmp_path / "curves.json"
    flat.write_text("{}")
    with pytest.raises(
        DataError, match=r"at \.\.\./synth_boxes/resnet50/cam/seed<seed>/baseline/curves\.json"
    ):
        write_figures(
            tmp_path,
            ds="synth_boxes",
            backbone="resnet50",
            method="cam",
            **inputs | {"baseline_curves": flat},
        )
