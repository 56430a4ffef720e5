"""The fcam command: known errors are one line on stderr and exit code 2; --log captures everything."""

from __future__ import annotations

from pathlib import Path

from fcam.cli import main
from fcam.data.synthetic import make_synthetic
from fcam.pipeline.dvc import dvc_yaml
from fcam.pipeline.params import load_params
from fcam.pipeline.stages import Pipeline
from tests.jobs import write_params

JOB = ["--ds", "synth_boxes", "--backbone", "resnet50", "--method", "cam", "--seed", "0"]


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]


def test_missing_inputs_are_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    make_synthetic(
        tmp_path / "data/synth_boxes",
        tmp_path / "data/metadata/synth_boxes",
        flavour="boxes",
        num_classes=2,
        n_train=2,
        n_val=2,
        n_test=2,
        size=40,
        seed=0,
    )
    assert main(["evaluate", "fcam", *JOB]) == 2
    (err,) = _errors(capsys)
    assert err.startswith(
        "fcam evaluate: error: results/decoder/synth_boxes/resnet50/cam/seed0/nbg0.1-alpha1/best.pt"
    )
    assert "checkpoint not found" in err
    assert not (tmp_path / "results/evaluate").exists()


def test_bad_metadata_names_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    (tmp_path / "data/metadata/synth_boxes/train").mkdir(parents=True)
    assert main(["cache-cams", *JOB]) == 2
    (err,) = _errors(capsys)
    assert "train/image_ids.txt" in err
    assert not (tmp_path / "results").exists()


def test_a_job_gets_its_configuration_from_one_file_and_set_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, name="mine.yaml")
    assert main(["cache-cams", *JOB, "--params", "mine.yaml", "--set", "cams.batch_size=0"]) == 2
    (err,) = _errors(capsys)
    assert "mine.yaml (with --set cams.batch_size=0)" in err
    assert "cams.batch_size" in err
    assert main(["train-decoder", *JOB]) == 2  # no params.yaml here, and no --setting
    assert "params.yaml: params file not found" in _errors(capsys)[0]


def test_under_dvc_bad_params_stop_the_stage_before_it_writes(tmp_path, monkeypatch, capsys):
    """DVC runs no check of fcam's; under DVC (DVC_STAGE set) each stage checks params and dvc.yaml."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    (tmp_path / "dvc.yaml").write_text(dvc_yaml(Pipeline(load_params("params.yaml"))))
    monkeypatch.setenv("DVC_STAGE", "synth@synth_boxes")
    log = tmp_path / "job.log"
    write_params(tmp_path, {"data_root": "../elsewhere"})
    assert main(["--log", str(log), "data", "synth", "--ds", "synth_boxes"]) == 2
    err = _errors(capsys)
    assert err == [
        "fcam data: error: params.yaml: data_root: '../elsewhere' leaves the repository; datasets are "
        "pipeline outputs and DVC tracks none outside the repository; to keep them on another disk, make "
        "data_root a symlink (README, Datasets)"
    ]
    assert not (tmp_path / "data").exists()

    write_params(tmp_path, {"seeds": [0, 1]})  # valid, but a structure dvc.yaml does not have
    assert main(["data", "synth", "--ds", "synth_boxes"]) == 2
    assert "dvc.yaml does not match the structure of params.yaml" in _errors(capsys)[0]
    assert not (tmp_path / "data").exists()

    write_params(tmp_path)
    assert main(["--log", str(log), "data", "synth", "--ds", "synth_boxes"]) == 0
    assert Path("data/metadata/synth_boxes/test/image_ids.txt").is_file()
