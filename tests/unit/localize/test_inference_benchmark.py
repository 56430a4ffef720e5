"""benchmarks/inference.py at its smallest size, and its latency arithmetic with a fake clock."""

from __future__ import annotations

import itertools
import json
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "inference.py"


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="bench_inference")


def test_runs_at_smallest_size(bench, tmp_path, capsys):
    out = tmp_path / "inference.json"
    code = bench["main"]([
        "--size", "32", "--batches", "1", "2", "--backbones", "resnet50", "--classes", "3",
        "--repeats", "1", "--warmup", "0", "--json", str(out),
    ])
    assert code == 0
    table = capsys.readouterr().out
    assert "resnet50" in table
    assert "paper ms/img" in table
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    assert report["torch"] == torch.__version__
    assert "git_commit" in report
    rows = report["results"]
    assert [(r["backbone"], r["batch"]) for r in rows] == [("resnet50", 1), ("resnet50", 2)]
    assert all(r["ms_per_image"] > 0 for r in rows)
    assert all(r["peak_mib"] is None and r["paper_ms_per_image"] == 18.5 for r in rows)


def test_the_timed_model_is_the_frozen_eval_mode_fcam(bench):
    model = bench["build_fcam"]("resnet50", 3, torch.device("cpu"))
    assert not model.training
    assert not model.classifier.training
    assert not any(p.requires_grad for p in model.classifier.parameters())
    fg = bench["_forward"](model, torch.zeros(2, 3, 32, 32))()
    assert fg.shape == (2, 32, 32)
    assert fg.is_inference()


def test_milliseconds_per_image_from_the_clock(bench):
    clock = itertools.count(step=0.5)  # every timed forward lasts 0.5 s
    rows = bench["benchmark"](["resnet50"], [1, 4], size=32, device=torch.device("cpu"),
                              repeats=1, warmup=0, num_classes=5, clock=lambda: next(clock))
    assert [(row["ms_per_image"], row["images_per_s"]) for row in rows] == [(500.0, 2.0), (125.0, 8.0)]
    assert "125.00" in bench["format_table"](rows)


def test_rejects_a_size_without_feature_map(bench):
    with pytest.raises(SystemExit):
        bench["main"](["--size", "16", "--backbones", "resnet50"])
