"""benchmarks/metrics.py at its smallest size: it runs, prints its tables and finds no difference."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "metrics.py"


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="bench_metrics")


def test_runs_at_smallest_size(bench, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert bench["main"](["--n", "3", "--seed", "1", "--warmup", "1", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "speed-up" in table
    assert "max_box_acc_v2" in table
    assert "PxAP" in table
    report = json.loads(out.read_text())
    assert report["n"] == 3
    assert report["device"] == "cpu"
    assert "git_commit" in report
    assert report["iou_max_abs_diff"] == 0.0
    assert all(diff == 0 for diff in report["max_abs_diff"].values())
    assert report["pxap"]["abs_diff"] == 0
    rows = {row["kind"]: row for row in report["rows"]}
    assert rows["all"]["maps"] == 3
    assert rows["all"]["reference_s"] > 0
    assert rows["all"]["sweep_s"] > 0


def test_generated_maps_are_valid_and_mixed(bench):
    data = bench["make_data"](40, 224, 0)
    maps = data["maps"]
    assert maps.shape == (40, 224, 224)
    assert maps.min() >= 0
    assert maps.max() <= 1
    assert set(data["kinds"]) == {"cam", "speckled", "fcam", "noise"}
    for boxes in data["boxes"]:
        assert boxes.ndim == 2
        assert (boxes[:, 2:] >= boxes[:, :2]).all()
        assert boxes.max() <= 223
