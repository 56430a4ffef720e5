"""A Snakemake run killed with SIGKILL inside a classifier epoch, and again inside a decoder epoch,
finishes on the next run with both jobs resuming from their last finished epoch.

Snakemake treats the killed job's declared outputs as incomplete and deletes them before rerunning
(`--rerun-incomplete`, after `--unlock` of the dead run's lock); the job's `.work/` folder is no
declared output, so its resume state survives (docs in fcam/train/resume.py).
"""

from __future__ import annotations

import pytest
import yaml

from tests.e2e.workspace import BIN, kill_after_state, make_workspace, run

pytestmark = pytest.mark.slow


def test_killed_dag_resumes_classifier_and_decoder(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["datasets"] = [{"name": "synth_boxes", "decoder_epochs": 3}]
    params["synth"] = {"synth_boxes": {**params["synth"]["synth_boxes"], "train": 64}}
    params["classifier"].update(epochs=3, batch_size=8)
    params["decoder"]["batch_size"] = 8
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    snakemake = [str(BIN / "snakemake"), "--cores", "1"]
    target = "results/evaluate/synth_boxes/resnet50/cam/fcam/metrics.json"
    clf_log = ws / "logs" / "classifier" / "synth_boxes" / "resnet50.log"
    dec_log = ws / "logs" / "decoder" / "synth_boxes" / "resnet50" / "cam.log"

    kill_after_state([*snakemake, target], ws, ws / "results/classifier/synth_boxes/resnet50/.work/resume.pt")
    run([*snakemake, "--unlock", target], ws)
    kill_after_state(
        [*snakemake, "--rerun-incomplete", target],
        ws,
        ws / "results/decoder/synth_boxes/resnet50/cam/.work/resume.pt",
    )
    assert "resuming from" in clf_log.read_text()

    run([*snakemake, "--unlock", target], ws)
    run([*snakemake, "--rerun-incomplete", target], ws)
    assert "resuming from" in dec_log.read_text()
    assert (ws / target).is_file()
    assert not (ws / "results/decoder/synth_boxes/resnet50/cam/.work").exists()
    assert "Nothing to be done" in run([*snakemake, "-n", target], ws).stdout
