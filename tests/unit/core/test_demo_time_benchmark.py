"""benchmarks/demo_time.py: per-stage sums of the timing lines jobs log, and the run's elapsed time."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "demo_time.py"


@pytest.fixture
def demo_time():
    return runpy.run_path(str(SCRIPT))


def _log(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"2026-12-05 INFO x: {line}\n" for line in lines))


def test_sums_per_stage_and_elapsed(tmp_path: Path, demo_time, capsys) -> None:
    job = "timing: job {} wall {} s, cpu {} s, startup {} s (process start to work, imports included)"
    _log(
        tmp_path / "logs/decoder/a.log",
        [
            "timing: training 10.00 s, validation 2.00 s (2 epochs run)",
            job.format("decoder@a", 15.5, 14.0, 3.0),
        ],
    )
    # A rerun in the same log: the last attempt counts.
    _log(
        tmp_path / "logs/decoder/b.log",
        [job.format("decoder@b", 99, 99, 99), job.format("decoder@b", 5.0, 4.0, 2.0)],
    )
    _log(tmp_path / "logs/report/table1.log", [job.format("table1", 1.5, 1.0, 1.2)])
    _log(tmp_path / "logs/cams/x.log", ["no timing line: an interrupted job"])
    snake = tmp_path / "run.snakemake.log"
    snake.write_text("[Sat Dec  5 17:00:00 2026]\nlocalrule all:\n[Sat Dec  5 17:10:30 2026]\n")
    stages = demo_time["job_times"](tmp_path / "logs")
    assert stages["decoder"] == {
        "jobs": 2,
        "wall": 20.5,
        "cpu": 18.0,
        "startup": 5.0,
        "training": 10.0,
        "validation": 2.0,
        "other": 3.5,
    }
    assert stages["table1"]["other"] == pytest.approx(0.3)
    assert "cams" not in stages
    assert demo_time["elapsed"](snake) == 630.0
    out = tmp_path / "t.json"
    assert (
        demo_time["main"](
            ["--logs", str(tmp_path / "logs"), "--snakemake-log", str(snake), "--json", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| decoder | 2 | 20 | 18 | 5 | 10 | 2 | 4 |" in printed
    assert "Elapsed 10.5 min on 2 cores" in printed
    assert json.loads(out.read_text())["elapsed_s"] == 630.0
