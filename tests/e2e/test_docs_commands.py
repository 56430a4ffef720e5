"""Every command the README and docs/usage.md show runs as written (issue 15): Snakemake and DVC
lines dry-run, the HTML report is built, the `fcam` tools run, in the smoke run's workspace."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.e2e.workspace import BIN, run
from tests.jobs import REPO

pytestmark = pytest.mark.slow

DOCS = (REPO / "README.md", REPO / "docs" / "usage.md")


def documented_commands(path: Path) -> list[str]:
    """The command lines of the ``bash`` code blocks of a Markdown file, comments removed."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = re.split(r"\s{2,}#", line)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_the_docs_show_commands():
    commands = [c for doc in DOCS for c in documented_commands(doc)]
    assert any(c.startswith("snakemake") for c in commands)
    assert any(c.startswith("dvc") for c in commands)
    assert "snakemake --report reports/report.html" in commands


def _dry(command: str) -> list[str] | None:
    """How the test runs a documented command (None: not runnable here, e.g. a server)."""
    words = shlex.split(command)
    tool = words[0]
    if tool == "snakemake":
        return (
            [str(BIN / "snakemake"), *words[1:]]
            if "--report" in words
            else [str(BIN / "snakemake"), "-n", *words[1:]]
        )
    if tool == "dvc":
        return [str(BIN / "dvc"), *words[1:], *(["--dry"] if words[1] == "repro" else [])]
    if tool == "fcam" and words[1] in ("dvc-yaml", "data", "readme-results"):
        return [str(BIN / "fcam"), *words[1:]]
    if tool == "python" and words[1].startswith("benchmarks/"):
        return [str(BIN / "python"), *words[1:]]
    return None  # make, source, fcam ui (a server), fcam localize (its example paths), ln ...


def test_every_documented_snakemake_dvc_and_fcam_tool_line_runs(smoke_run: Path, tmp_path: Path) -> None:
    # A copy (times kept): some commands change the workspace (`fcam data verify --touch` marks the
    # data as updated), and later tests expect the smoke run as it ended.
    ws = tmp_path / "ws"
    shutil.copytree(smoke_run, ws, symlinks=True)
    if not (ws / ".dvc").is_dir():
        run(["git", "init", "-q"], ws)
        run([str(BIN / "dvc"), "init", "-q"], ws)
    run([str(BIN / "fcam"), "dvc-yaml"], ws)  # the workspace runs the smoke preset: its own structure
    # The README's results commands read the run's logs and rewrite a copy of the README.
    shutil.copy2(REPO / "README.md", ws / "README.md")
    shutil.copytree(REPO / "benchmarks", ws / "benchmarks", dirs_exist_ok=True)
    ran = []
    for doc in DOCS:
        for command in documented_commands(doc):
            cmd = _dry(command)
            if cmd is None:
                continue
            proc = run(cmd, ws, check=False, timeout=600)
            assert proc.returncode == 0, (
                f"{doc.name}: `{command}` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
            ran.append(command)
    assert len(ran) >= 8, ran
    assert "fcam readme-results --timing timing.json" in ran
    readme = (ws / "README.md").read_text()
    assert "Classifiers: validation top-1 of the kept epochs" in readme
    assert "(pending:" not in readme


def test_the_html_report_holds_the_tables_comparison_figures_and_ablation(smoke_run: Path) -> None:
    report = smoke_run / "reports" / "report.html"
    if not report.is_file():
        run([str(BIN / "snakemake"), "--report", "reports/report.html"], smoke_run, timeout=600)
    text = report.read_text(errors="replace")
    # Snakemake embeds each result (base64) under its file name and category.
    for name in ("table1.html", "table2.html", "comparison.html", "ablation.html"):
        assert name in text, name
    pngs = sorted(p.name for p in (smoke_run / "reports" / "figures").glob("*.png"))
    assert pngs
    assert all(name in text for name in pngs)
    for caption in (
        "Table 1 of the F-CAM paper",
        "Our numbers beside the published ones",
        "The loss ablation",
    ):
        assert caption in text, caption
