"""The fcam command: known errors are one line on stderr and exit code 2; --log captures everything."""

from __future__ import annotations

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
