"""Merge the steps of ``benchmarks/gpu_check.sh`` into one ``gpu_check.json`` and print one report.

``python benchmarks/gpu_report.py env OUT``: write ``OUT/env.json`` (``nvidia-smi`` output, torch,
CUDA and cuDNN versions, the visible devices, the git commit, the host's CPUs).

``python benchmarks/gpu_report.py merge OUT``: read what the steps left in ``OUT`` and write
``OUT/gpu_check.json``, then print the report. Any file may be missing (a step that failed, timed
out or was not run): its section says so and the others are still reported. The files:

- ``steps/<step>.json``: ``{"step", "status", "rc", "seconds", "limit_s"}`` written by the script
  per step (``status``: ok, failed, timeout, skipped or "not present"), listed in running order;
- ``env.json``; ``pytest_gpu.xml`` and ``e2e.xml`` (pytest's JUnit XML: pass/fail/skip counts);
- ``train.json``, ``crf.json``, ``inference.json``, ``cams.json``, ``host.json``: the benchmarks'
  own reports; ``projection.json``: ``benchmarks/project_paper.py``'s.
"""

from __future__ import annotations

import json
import os
import platform
import runpy
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("train", "crf", "inference", "cams", "host", "projection")
#: The steps of gpu_check.sh, in the order it runs them.
STEPS = ("env", "pytest_gpu", "train", "crf", "inference", "cams", "host", "project", "e2e")


def environment() -> dict[str, Any]:
    """The machine: nvidia-smi, torch / CUDA / cuDNN versions, devices, commit, CPUs."""
    import torch

    from fcam.tracking import git_commit

    smi = shutil.which("nvidia-smi")
    smi_out = None
    if smi is not None:
        try:
            smi_out = subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            smi_out = f"nvidia-smi failed: {exc}"
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cuda_available": cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
        "memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None,
        "nvidia_smi": smi_out,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(HERE.parent),
    }


def junit_counts(path: Path) -> dict[str, Any] | None:
    """Tests, passed, failed, errors, skipped and seconds of a pytest JUnit XML file; None if absent."""
    if not path.is_file():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return {"error": f"{path}: {exc}"}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    keys = ("tests", "failures", "errors", "skipped")
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in keys}
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {
        **counts,
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "seconds": sum(float(s.get("time", 0)) for s in suites),
        "failed_tests": failed,
    }


def _load(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return {"error": f"{path}: {exc}"}


def merge(out: Path) -> dict[str, Any]:
    """Everything the steps left in ``out``, as one dict (absent parts are None)."""
    found = {path.stem: path for path in (out / "steps").glob("*.json")}
    order = [s for s in STEPS if s in found] + sorted(set(found) - set(STEPS))
    # A list, not a mapping: the JSON keeps the order (save_json sorts keys).
    steps = [{"step": name, **(_load(found[name]) or {})} for name in order]
    report: dict[str, Any] = {
        "steps": steps,
        "env": _load(out / "env.json"),
        "pytest_gpu": junit_counts(out / "pytest_gpu.xml"),
        "e2e": junit_counts(out / "e2e.xml"),
    }
    for name in BENCHMARKS:
        report[name] = _load(out / f"{name}.json")
    return report


def _table(script: str, function: str, *args: Any) -> str:
    """A benchmark script's own table function (the scripts are not a package)."""
    return runpy.run_path(str(HERE / f"{script}.py"), run_name=f"report_{script}")[function](*args)


def _has_results(part: Any) -> bool:
    return isinstance(part, Mapping) and "error" not in part


def format_report(report: Mapping[str, Any]) -> str:
    """The printed report: steps, tests, each benchmark's table, the projection."""
    lines: list[str] = []
    env = report.get("env")
    if _has_results(env):
        card = ", ".join(env["devices"]) or f"no CUDA device (CPU {env['cpu']})"
        lines.append(f"machine: {card}; torch {env['torch']}, CUDA {env['cuda_runtime']}, "
                     f"cuDNN {env['cudnn']}, "
                     f"{env['cpu_count']} CPUs, commit {env['git_commit'][:10]}")
    lines.append("steps:")
    for step in report["steps"]:
        name = step["step"]
        if "error" in step:
            lines.append(f"  {name:<12} unreadable: {step['error']}")
            continue
        lines.append(f"  {name:<12} {step.get('status', '?'):<12} rc {step.get('rc')!s:>4} "
                     f"{float(step.get('seconds') or 0):>6.0f} s (limit {step.get('limit_s')} s)")
    for key, title in (("pytest_gpu", "pytest -m gpu"), ("e2e", "paper-preset e2e")):
        counts = report.get(key)
        if counts is None:
            continue
        if "error" in counts:
            lines.append(f"{title}: {counts['error']}")
            continue
        lines.append(f"{title}: {counts['passed']} passed, {counts['failures']} failed, {counts['errors']} "
                     f"errors, {counts['skipped']} skipped in {counts['seconds']:.1f} s")
        lines += [f"  FAILED {t}" for t in counts["failed_tests"]]
    sections = (
        ("train", "training step throughput", lambda r: _table("train", "format_table", r["results"])),
        ("inference", "F-CAM inference", lambda r: _table("inference", "format_table", r["results"])),
        ("cams", "CAM throughput", lambda r: _table("cams", "format_table", r["results"])),
        ("crf", "dense CRF loss forward+backward", _crf_table),
        ("host", "host costs", lambda r: _table("host", "format_table", r["loading_ms_per_image"],
                                                  r["scoring_ms_per_map"])),
        ("projection", "projection", lambda r: _table("project_paper", "format_table", r)),
    )
    for key, title, table in sections:
        part = report.get(key)
        if part is None:
            lines.append(f"\n{title}: not measured (see steps)")
        elif not _has_results(part):
            lines.append(f"\n{title}: {part.get('error') if isinstance(part, Mapping) else part}")
        else:
            lines.append(f"\n{title}:")
            lines.append(table(part))
    return "\n".join(lines)


def _crf_table(report: Mapping[str, Any]) -> str:
    lines = [f"batch {report['batch']} x {report['size']}^2, {report['images']} images, "
             f"on {report['device']}",
             f"{'scale':>6} {'fwd s':>8} {'fwd+bwd s':>10} {'ms/img':>8}"]
    for row in report["results"]:
        lines.append(f"{row['scale']:>6.2f} {row['forward_s']:>8.3f} {row['forward_backward_s']:>10.3f} "
                     f"{1000 * row['forward_backward_s'] / report['batch']:>8.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("env", "merge"):
        print("usage: gpu_report.py {env|merge} OUT_DIR", file=sys.stderr)
        return 2
    out = Path(args[1])
    out.mkdir(parents=True, exist_ok=True)
    from fcam.io import save_json

    if args[0] == "env":
        env = environment()
        save_json(env, out / "env.json")
        print(env["nvidia_smi"] or "nvidia-smi: not found")
        print(f"torch {env['torch']}, CUDA {env['cuda_runtime']}, devices {env['devices'] or 'none'}")
        return 0
    report = merge(out)
    save_json(report, out / "gpu_check.json")
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
