"""benchmarks/train.py at its smallest size, and its throughput arithmetic with a fake clock."""

from __future__ import annotations

import itertools
import json
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "train.py"


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="bench_train")


def test_runs_both_phases_at_smallest_size(bench, tmp_path, capsys):
    out = tmp_path / "train.json"
    code = bench["main"]([
        "--size", "32", "--batch", "2", "--backbones", "resnet50", "--classes", "3",
        "--repeats", "1", "--warmup", "0", "--json", str(out),
    ])
    assert code == 0
    table = capsys.readouterr().out
    assert "resnet50" in table
    assert "decoder img/s" in table
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    rows = report["results"]
    assert [r["phase"] for r in rows] == ["classifier", "decoder"]
    assert all(r["images_per_s"] > 0 and r["peak_mib"] is None and r["batch"] == 2 for r in rows)


def test_images_per_second_from_the_clock(bench):
    clock = itertools.count(step=0.5)  # every timed step lasts 0.5 s
    rows = bench["benchmark"](["resnet50"], ["classifier"], size=32, batch=3, device=torch.device("cpu"),
                              repeats=1, warmup=0, num_classes=5, clock=lambda: next(clock))
    assert [row["images_per_s"] for row in rows] == [6.0]
    assert "classifier img/s" in bench["format_table"](rows)
