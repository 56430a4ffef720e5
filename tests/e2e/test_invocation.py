"""How users invoke the workflow: presets given with ``--configfile`` (a whole configuration, checked
with ``file:line: key: problem`` messages, targets before the flag) and the default profile that a
plain ``snakemake`` command loads by itself (issue #13, items 3 and 8)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.workspace import kill_when_written, make_workspace, preset, run, snakemake, write_params

pytestmark = pytest.mark.slow

PROFILE_LINE = "Using workflow specific profile profiles/default for setting default command line arguments."


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke workspace for dry runs (they write nothing but Snakemake's own folder)."""
    return make_workspace(tmp_path_factory.mktemp("invocation") / "ws")


def _job_stats(output: str) -> dict[str, int]:
    stats = output.split("Job stats:", 1)[1]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M)}


def test_preset_missing_a_key_fails_naming_file_line_and_key(workspace):
    """Issue #13, item 3: a preset replaces params.yaml; a key it lacks is not taken from there."""
    data = preset("smoke")
    del data["classifier"]["epochs"]
    bad = write_params(workspace / "no_epochs.yaml", data)
    line = bad.read_text().splitlines().index("classifier:") + 1

    proc = run(snakemake("-n", "--configfile", bad.name), workspace, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert [text for text in out.splitlines() if "classifier.epochs" in text] == [
        f"{bad.name}:{line}: classifier.epochs: missing (a parameter file is a whole configuration: "
        "every key is required)"
    ], out
    assert len(re.findall(r"^\w*Error\b", out, flags=re.M)) == 1, out
    assert not (workspace / "results").exists()


def test_paper_preset_dag_with_targets_before_configfile(workspace):
    """Issue #13, item 3: the paper's protocol, one classifier per (dataset, backbone, CAM method)."""
    paper = "workflow/presets/paper.yaml"
    proc = run(snakemake("-n", "reports/table1.tex", "--configfile", paper), workspace)
    out = proc.stdout + proc.stderr
    stats = _job_stats(out)
    # CUB and OpenImages x VGG16, InceptionV3, ResNet50 x one seed x six CAM methods, of which
    # five are computed (XGrad-CAM is Grad-CAM's twin with the authors' variants: fcam.cam_twins)
    assert stats["classifier"] == 30, stats
    assert stats["cams"] == 30, stats
    assert stats["evaluate_fcam"] == 36, stats
    assert "synth" not in stats
    assert stats["download"] == 2, stats
    assert f"--params {paper}" in out


def test_plain_snakemake_uses_the_default_profile(tmp_path):
    """Issue #13, item 8: profiles/default applies without --workflow-profile; e.g. an output left
    incomplete by a killed run is rerun without passing --rerun-incomplete."""
    ws = make_workspace(
        tmp_path / "ws",
        changes={
            "datasets": {"synth_boxes": {"classifier": {}, "decoder": {}}},
            "synth": {"synth_boxes": {"classes": 2, "size": 40, "train": 8, "val": 4, "test": 4, "seed": 0}},
        },
    )
    target = "data/metadata/synth_boxes"
    # Killed once the job has put its first split in place: its outputs exist and are incomplete.
    kill_when_written(snakemake("--cores", "1", target), ws, "data/synth_boxes/images/*")
    assert (ws / "data/synth_boxes").is_dir()
    run(snakemake("--unlock"), ws)

    dry = run(snakemake("-n", target), ws)
    out = dry.stdout + dry.stderr
    assert PROFILE_LINE in out, out
    # rerun-incomplete (the profile's) forces the jobs of incomplete outputs; without it Snakemake
    # stops with IncompleteFilesException
    assert _job_stats(out) == {"synth": 1, "total": 1}, out
    assert "reason: Forced execution" in out, out
    run(snakemake("--cores", "1", target), ws)
    assert (ws / target / "test/localization.txt").is_file()
    assert "Nothing to be done" in run(snakemake("-n", target), ws).stdout
