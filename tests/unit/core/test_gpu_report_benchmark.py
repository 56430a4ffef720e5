"""benchmarks/gpu_report.py: merging the steps of gpu_check.sh (some failed or missing) into one report."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_report.py"

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1"
skipped="2" tests="6" time="12.5"><testcase classname="tests.unit.a" name="test_x" time="1"/>
<testcase classname="tests.unit.a" name="test_y" time="1"><failure message="boom"/></testcase>
</testsuite></testsuites>"""


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="bench_gpu_report")


def _step(out: Path, name: str, status: str, rc: int | None) -> None:
    record = {"step": name, "status": status, "rc": rc, "seconds": 3, "limit_s": 60}
    (out / "steps" / f"{name}.json").write_text(json.dumps(record))


def test_junit_counts(bench, tmp_path):
    path = tmp_path / "j.xml"
    path.write_text(JUNIT)
    counts = bench["junit_counts"](path)
    assert (counts["tests"], counts["passed"], counts["failures"], counts["skipped"]) == (6, 3, 1, 2)
    assert counts["failed_tests"] == ["tests.unit.a::test_y"]
    assert counts["seconds"] == 12.5
    assert bench["junit_counts"](tmp_path / "absent.xml") is None
    (tmp_path / "bad.xml").write_text("<testsuites")
    assert "error" in bench["junit_counts"](tmp_path / "bad.xml")


def test_merge_reports_what_ran_and_what_did_not(bench, tmp_path, capsys):
    (tmp_path / "steps").mkdir()
    _step(tmp_path, "train", "ok", 0)
    _step(tmp_path, "pytest_gpu", "failed", 1)
    _step(tmp_path, "crf", "timeout", 124)
    (tmp_path / "pytest_gpu.xml").write_text(JUNIT)
    (tmp_path / "train.json").write_text(json.dumps({"results": [
        {"backbone": "resnet50", "phase": "classifier", "batch": 32, "size": 224, "seconds": 0.5,
         "images_per_s": 64.0, "peak_mib": 1000.0},
    ]}))
    (tmp_path / "inference.json").write_text("{not json")
    assert bench["main"](["merge", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["step"] for s in report["steps"]] == ["pytest_gpu", "train", "crf"]  # the script's order
    assert report["steps"][2]["status"] == "timeout"
    assert report["pytest_gpu"]["failures"] == 1
    assert report["crf"] is None
    assert report["e2e"] is None
    assert "error" in report["inference"]
    assert "timeout" in printed
    assert "FAILED tests.unit.a::test_y" in printed
    assert "64.0" in printed  # the train table
    assert "dense CRF loss forward+backward: not measured" in printed
    assert "F-CAM inference: " in printed


def test_usage(bench, tmp_path):
    assert bench["main"](["nothing", str(tmp_path)]) == 2
