"""``fcam localize``: flags, folders, and a non-zero exit after reporting every failed image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from fcam.cli import localize as cli
from fcam.errors import DataError


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fcam")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def test_flags_become_the_dataclass() -> None:
    args = _parse("localize", "a.png", "dir", "--model", "best.pt", "--out", "o", "--batch-size", "2",
                  "--input-size", "96", "--tau", "0.3", "--threads", "1", "--device", "cpu", "--no-progress")
    assert cli._args(args) == cli.LocalizeArgs(
        inputs=(Path("a.png"), Path("dir")), model="best.pt", out=Path("o"), device="cpu", batch_size=2,
        input_size=96, tau=0.3, threads=1, progress=False,
    )
    assert cli._args(_parse("localize", "x", "--model", "m", "--out", "o")).tau is None


@pytest.mark.parametrize("flags", [["--tau", "1"], ["--batch-size", "0"], ["--input-size", "-3"]])
def test_bad_flags_are_rejected(flags: list[str], capsys) -> None:
    with pytest.raises(SystemExit):
        _parse("localize", "x.png", "--model", "m", "--out", "o", *flags)
    assert "expected" in capsys.readouterr().err


def test_folder_run_reports_failures_after_processing_the_rest(
    checkpoints, user_images: dict[str, Path], tmp_path: Path
) -> None:
    folder = user_images["odd_png"].parent  # odd.png, flat.jpg, grey.png, ..., corrupt.jpg, truncated.jpg
    (folder / "readme.txt").write_text("not an image")
    out = tmp_path / "out"
    args = _parse("localize", str(folder), "--model", str(checkpoints.decoder), "--out", str(out),
                  "--input-size", "32", "--threads", "1", "--no-progress")
    with pytest.raises(DataError) as info:
        args.func(args)
    message = str(info.value)
    assert message.startswith(f"2 of 7 images failed ({out / 'summary.json'})")
    assert str(user_images["corrupt"]) in message
    assert str(user_images["truncated"]) in message
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 7
    assert summary["n_failed"] == 2
    assert (out / "odd_map.png").is_file()
    assert (out / "flat_boxes.json").is_file()

    # Only good images: no error.
    good = _parse("localize", str(user_images["grey"]), "--model", str(checkpoints.decoder),
                  "--out", str(tmp_path / "good"), "--input-size", "32", "--no-progress")
    good.func(good)
    assert json.loads((tmp_path / "good" / "summary.json").read_text())["n_failed"] == 0
