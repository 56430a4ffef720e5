"""benchmarks/cams.py at its smallest size, and its timing arithmetic with a fake clock."""

from __future__ import annotations

import itertools
import json
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "cams.py"


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="bench_cams")


def test_runs_at_smallest_size(bench, tmp_path, capsys):
    out = tmp_path / "cams.json"
    code = bench["main"]([
        "--size", "32", "--batch", "2", "--backbones", "tv-resnet18", "--methods", "cam", "smoothgradcampp",
        "--repeats", "1", "--warmup", "0", "--smooth-samples", "1", "--json", str(out),
    ])
    assert code == 0
    table = capsys.readouterr().out
    assert "tv-resnet18" in table
    assert "smoothgradcampp" in table
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    assert report["torch"] == torch.__version__
    assert "git_commit" in report
    rows = report["results"]
    assert [(r["method"], r["mode"]) for r in rows] == [
        ("cam", "batched"), ("cam", "single"), ("smoothgradcampp", "batched"), ("smoothgradcampp", "single"),
    ]
    assert all(r["images_per_s"] > 0 and r["map"] == "1x1" and r["batch"] == 2 for r in rows)


def test_images_per_second_from_the_clock(bench):
    clock = itertools.count(step=0.5)  # every timed run lasts 0.5 s
    rows = bench["benchmark"](["tv-resnet18"], ["gradcam"], size=32, batch=3, device=torch.device("cpu"),
                              repeats=1, warmup=0, num_classes=5, clock=lambda: next(clock))
    assert [row["images_per_s"] for row in rows] == [6.0, 6.0]
    assert "gradcam" in bench["format_table"](rows)


def test_batched_mode_only(bench, capsys):
    assert bench["main"]([
        "--size", "32", "--batch", "2", "--backbones", "tv-resnet18", "--methods", "cam",
        "--repeats", "1", "--warmup", "0", "--modes", "batched",
    ]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("tv-resnet18"))
    assert line.split()[-2:] == ["-", "-"]  # single img/s and speed-up not measured
