"""The fcam command: known errors are one line on stderr and exit code 2; --log captures everything."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from fcam.cli import main


def test_missing_inputs_are_one_clear_line(tmp_path, capsys):
    code = main(
        [
            "evaluate",
            "--variant",
            "fcam",
            "--ds",
            "synth_boxes",
            "--backbone",
            "resnet50",
            "--method",
            "cam",
            "--dataset-root",
            str(tmp_path),
            "--metadata-root",
            str(tmp_path),
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        err[-1]
        == "fcam evaluate: error: the fcam evaluation needs --classifier, --decoder-best, --decoder-last"
    )
    assert not (tmp_path / "out").exists()


def test_bad_metadata_names_the_file(tmp_path, capsys):
    code = main(
        [
            "cache-cams",
            "--ds",
            "synth_boxes",
            "--backbone",
            "resnet50",
            "--method",
            "cam",
            "--dataset-root",
            str(tmp_path),
            "--metadata-root",
            str(tmp_path),
            "--splits",
            "train",
            "test",
            "--checkpoint",
            str(tmp_path / "c.pt"),
            "--resize-size",
            "40",
            "--crop-size",
            "32",
            "--out-dir",
            str(tmp_path / "cams"),
        ]
    )
    assert code == 2
    assert "train/image_ids.txt" in capsys.readouterr().err
    assert not (tmp_path / "cams").exists()


def test_under_dvc_bad_params_stop_the_stage_before_it_writes(tmp_path, monkeypatch, capsys):
    """DVC sets DVC_ROOT for stage commands; fcam then validates that repository's params.yaml."""
    repo = Path(__file__).resolve().parents[3]
    root = tmp_path / "repo"
    (root / "workflow" / "schemas").mkdir(parents=True)
    shutil.copy(repo / "workflow" / "schemas" / "params.schema.yaml", root / "workflow" / "schemas")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data_root"] = "../elsewhere"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("DVC_ROOT", str(root))
    argv = ["--log", str(tmp_path / "job.log"), "report", "table1", "--results", str(tmp_path), "--out"]
    code = main([*argv, str(tmp_path / "table1.tex")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "fcam report: error: params.yaml: data_root: '../elsewhere' leaves the repository; datasets are "
        "pipeline outputs and DVC tracks none outside the repository; to keep them on another disk, make "
        "data_root a symlink (README, Datasets)"
    ]
    assert not (tmp_path / "job.log").exists()
    assert not (tmp_path / "table1.tex").exists()

    params["data_root"] = "data"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    main([*argv, str(tmp_path / "table1.tex")])  # valid params: the command itself runs (and logs)
    assert (tmp_path / "job.log").exists()
