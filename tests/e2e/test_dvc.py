"""`dvc repro` on the smoke preset runs the pipeline, and a decoder parameter reruns only what it touches."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.e2e.workspace import BIN, make_workspace, run

pytestmark = pytest.mark.slow


def _stages_run(output: str) -> set[str]:
    return {name.split("@")[0] for name in re.findall(r"Running stage '([^']+)'", output)}


def test_dvc_repro_and_decoder_parameter_change(tmp_path):
    ws = make_workspace(tmp_path / "dvc", "smoke", dvc=True)
    dvc = str(BIN / "dvc")
    first = run([dvc, "repro"], ws, timeout=1800).stdout
    assert {
        "synth",
        "classifier",
        "cams",
        "decoder",
        "evaluate_baseline",
        "evaluate_fcam",
        "table1",
    } <= _stages_run(first)
    assert (ws / "reports" / "table1.tex").is_file()
    assert (ws / "dvc.lock").is_file()

    assert _stages_run(run([dvc, "repro"], ws).stdout) == set()

    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["decoder"]["lr"] = 0.02
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rerun = _stages_run(run([dvc, "repro"], ws, timeout=1800).stdout)
    assert {"decoder", "evaluate_fcam"} <= rerun
    # the decoder, the evaluations and reports downstream of it (the ablation retrains decoders too)
    assert rerun <= {
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
    assert not rerun & {"synth", "classifier", "cams", "evaluate_baseline"}

    # Share the results through a DVC remote: a fresh clone pulls them and has nothing to recompute.
    remote = tmp_path / "remote"
    run([dvc, "remote", "add", "-d", "store", str(remote)], ws)
    run(["git", "add", "-A"], ws)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results"], ws)
    run([dvc, "push"], ws, timeout=600)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(ws), str(clone)], tmp_path)
    run([dvc, "pull"], clone, timeout=600)
    assert (clone / "reports" / "table1.tex").read_text() == (ws / "reports" / "table1.tex").read_text()
    assert _stages_run(run([dvc, "repro"], clone).stdout) == set()
    # Pulled files get fresh modification times in no particular order: Snakemake needs them
    # touched once (the documented step), then it has nothing to do either.
    snakemake = str(BIN / "snakemake")
    run([snakemake, "--cores", "1", "--touch", "reports/table1.tex"], clone)
    assert "Nothing to be done" in run([snakemake, "-n", "--cores", "1", "reports/table1.tex"], clone).stdout

    # DVC runs none of fcam's params checks; every fcam stage validates params.yaml itself under
    # `dvc repro` (DVC_ROOT), so a typo stops the first stage it reruns with one line naming the key.
    params["decoder"]["lrr"] = 0.1
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = run([dvc, "repro"], ws, timeout=600, check=False)
    assert bad.returncode != 0
    assert "params.yaml: decoder.lrr: unknown key" in bad.stdout + bad.stderr
