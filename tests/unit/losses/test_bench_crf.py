"""The CRF benchmark script runs end to end at its smallest size and writes its JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "crf.py"


def test_benchmark_runs_at_the_smallest_size(tmp_path):
    out = tmp_path / "crf.json"
    args = ["--batch", "2", "--size", "16", "--scales", "1.0", "0.5", "--repeat", "1", "--warmup", "1"]
    args += ["--images", "noise", "--threads", "1", "--accuracy-images", "1", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=SCRIPT.parents[1],
        env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])},  # fcam importable even if not installed
        timeout=120,
    )
    assert "fwd+bwd s" in done.stdout
    report = json.loads(out.read_text())
    assert (report["batch"], report["size"], report["device_type"]) == (2, 16, "cpu")
    assert report["torch"]
    assert [row["scale"] for row in report["results"]] == [1.0, 0.5]
    for row in report["results"]:
        assert 0 < row["forward_s"] <= row["forward_backward_s"]
        assert row["loss"] < 0
        assert 0 <= row["ws_rel_error_median"] < 0.15
