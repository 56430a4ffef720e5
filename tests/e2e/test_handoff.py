"""Snakemake and DVC hand off (issue 11): what one of them built, the other knows is built.

On the smoke preset: Snakemake builds everything and DVC then finds every stage up to date; a
decoder parameter change makes `dvc repro` rerun only the decoders and what depends on them; after
it, Snakemake has nothing to do; the results travel through a DVC remote to a fresh clone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.jobs import REPO

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent  # the venv running the tests: fcam, snakemake, dvc


def _run(cmd: list[str], cwd: Path, timeout: float = 1800) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # DVC runs `fcam`
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def _workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("Snakefile", ".dvcignore", ".gitignore"):
        shutil.copy2(REPO / name, root / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("workflow", "profiles", "fcam"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    shutil.copy2(REPO / "workflow/presets/smoke.yaml", root / "params.yaml")
    _run(["git", "init", "-q"], root)
    _run([str(BIN / "dvc"), "init", "-q"], root)
    _run([str(BIN / "dvc"), "config", "core.analytics", "false"], root)
    # as `make setup` has it: on a file system without reflinks, DVC copies an output into its
    # cache and links the copy back, which gives the output a new modification time
    _run([str(BIN / "dvc"), "config", "cache.type", "reflink,hardlink,symlink,copy"], root)
    _run([str(BIN / "fcam"), "dvc-yaml"], root)
    return root


def _stages(output: str) -> set[str]:
    """Stage families DVC ran or would run (`dvc repro` and `dvc repro --dry` print these lines)."""
    return {name.split("@")[0] for name in re.findall(r"Running stage '([^']+)'", output)}


def test_snakemake_and_dvc_hand_off(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    dvc, snakemake = str(BIN / "dvc"), str(BIN / "snakemake")
    built = _run([snakemake, "--cores", "2"], ws)
    assert re.search(r"fcam: recorded \d+ stages in dvc\.lock", built)
    assert "Data and pipelines are up to date." in _run([dvc, "status"], ws)
    # DVC gave what it linked back from its cache new modification times, in the DAG's order.
    # Judged by times alone, as for the default preset's checkpoints (Snakemake compares the
    # checksums of inputs under 1 MB, which the smoke preset's are).
    by_times = [snakemake, "-n", "--cores", "2", "--max-checksum-file-size", "0"]
    assert "Nothing to be done" in _run(by_times, ws)

    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["decoder"]["lr"] = params["decoder"]["lr"] / 2
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # A dry run lists the stages whose inputs changed now; what they feed is known once they ran.
    planned = _stages(_run([dvc, "repro", "--dry"], ws))
    downstream = {
        "decoder",
        "evaluate_fcam",
        "table1",
        "table2",
        "comparison",
        "figures",
        "paper",
        "ablation_decoder",
        "ablation_evaluate",
        "ablation_table",
    }
    assert {"decoder", "ablation_decoder"} <= planned <= downstream
    ran = _stages(_run([dvc, "repro"], ws))
    assert {"decoder", "evaluate_fcam", "ablation_decoder"} <= ran <= downstream
    assert "Data and pipelines are up to date." in _run([dvc, "status"], ws)
    assert "Nothing to be done" in _run([snakemake, "-n", "--cores", "2"], ws)

    # The results travel: push to a DVC remote, clone, pull; nothing to recompute for DVC, and
    # Snakemake, which judges by modification times a pull does not keep, needs one --touch.
    remote = tmp_path / "remote"
    _run([dvc, "remote", "add", "-d", "store", str(remote)], ws)
    _run(["git", "add", "-A"], ws)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results"], ws)
    _run([dvc, "push"], ws, timeout=600)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(ws), str(clone)], tmp_path)
    _run([dvc, "pull"], clone, timeout=600)
    assert (clone / "reports/table1.tex").read_text() == (ws / "reports/table1.tex").read_text()
    assert _stages(_run([dvc, "repro"], clone)) == set()
    _run([snakemake, "--cores", "1", "--touch"], clone)
    assert "Nothing to be done" in _run([snakemake, "-n", "--cores", "1"], clone)
