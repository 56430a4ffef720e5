"""``fcam report ...``: the report stages read exactly the files the stage table lists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fcam.cli import main
from tests.jobs import spec, write_params

CHANGES = {
    "seeds": [0, 1, 2],
    "backbones": {"vgg16": {"classifier": {}, "decoder": {}}, "resnet50": {"classifier": {}, "decoder": {}}},
    "methods": ["cam", "gradcam"],
    "ablation.variants": {"pce": ["pce"]},
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch, write_metrics: Callable[..., Path], eval_outputs) -> Path:
    """A parameter file and fake evaluation outputs at the paths its stage table lists."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, CHANGES)
    for path in spec("table1").paths("metrics"):
        ds, backbone, method, seed, variant = path.parts[-6:-1]
        write_metrics(
            tmp_path / "results/evaluate", ds, backbone, method, variant, seed=int(seed[4:]), preset="smoke"
        )
    for path in spec("ablation_table").paths("metrics"):
        ds, backbone, method, seed, variant = path.parts[-6:-1]
        write_metrics(
            tmp_path / "results/ablation/evaluate",
            ds,
            backbone,
            method,
            variant,
            seed=int(seed[4:]),
            preset="smoke",
        )
    eval_outputs("synth_masks")
    return tmp_path


def test_tables_comparison_and_ablation(workspace: Path, parse_tex) -> None:
    for name in ("table1", "table2", "comparison", "ablation"):
        assert main(["report", name]) == 0, name
    rows = parse_tex((workspace / "reports/table1.tex").read_text())
    assert list(rows)[1:] == ["Method", "CAM", "GradCAM", "CAM + F-CAM", "GradCAM + F-CAM"]  # params' order
    assert rows["Method"][:2] == ["VGG16", "ResNet50"]
    assert (
        "±" in (workspace / "reports/table1.tex").read_text()
        or r"\pm" in (workspace / "reports/table1.tex").read_text()
    )
    assert "beyond noise" in (workspace / "reports/comparison.md").read_text()
    assert "PCE" in (workspace / "reports/ablation.tex").read_text()


def test_figures_of_one_cell(workspace: Path) -> None:
    assert (
        main(["report", "figures", "--ds", "synth_masks", "--backbone", "resnet50", "--method", "cam"]) == 0
    )
    assert len(list((workspace / "reports/figures").glob("synth_masks_resnet50_cam_*.png"))) == 3


def test_a_missing_listed_file_is_one_error_naming_it(workspace: Path, capsys) -> None:
    missing = spec("table1").paths("metrics")[5]
    missing.unlink()
    assert main(["report", "table1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fcam report: error:")]
    assert len(errors) == 1
    assert str(missing) in errors[0]
    assert not (workspace / "reports/table1.tex").exists()


def test_a_job_the_parameters_do_not_run_is_refused(workspace: Path, capsys) -> None:
    assert main(["report", "figures", "--ds", "cub", "--backbone", "resnet50", "--method", "cam"]) == 2
    assert "ds 'cub' is not enabled for stage figures" in capsys.readouterr().err
