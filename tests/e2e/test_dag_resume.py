"""Whole Snakemake runs killed with SIGKILL (Snakemake and its jobs at once), then unlocked and rerun.

- Killed inside a classifier epoch, then inside a decoder epoch: each rerun resumes the job from
  its last finished epoch (the `.work/` folder is no declared output, so Snakemake keeps it).
- Killed inside a decoder epoch, then the classifier's learning rate changed (issue #13, item 1):
  Snakemake retrains the classifier and the CAMs, and the decoder starts over rather than resuming
  a state trained on the old classifier's CAMs.
- Killed the moment a job's first output appears, while it finishes (issue #13, item 2): the rerun
  finishes it from the kept state, and no temporary file stays behind.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.workspace import (
    kill_after_state,
    kill_when_written,
    make_workspace,
    preset,
    run,
    snakemake,
    write_params,
)

pytestmark = pytest.mark.slow

#: One small dataset; two epochs of each phase with small batches, so that an epoch lasts a few
#: seconds (the smoke preset's slim networks train ~200 images/s) and a run can be killed inside
#: the second.
ONE_DATASET = {
    "device": "cpu",
    "datasets": {"synth_boxes": {"classifier": {}, "decoder": {}}},
    "synth": {"synth_boxes": {"classes": 2, "size": 40, "train": 640, "val": 8, "test": 8, "seed": 0}},
}
TWO_EPOCHS = {
    **ONE_DATASET,
    "classifier.epochs": 2,
    "classifier.batch_size": 8,
    "decoder.epochs": 2,
    "decoder.batch_size": 8,
}
SNAKEMAKE = snakemake("--cores", "1")
TARGET = "results/evaluate/synth_boxes/resnet50/cam/seed0/fcam/metrics.json"
CLASSIFIER = Path("results/classifier/synth_boxes/resnet50")
CLASSIFIER_WORK = CLASSIFIER / "shared/seed0/.work"
DECODER = Path("results/decoder/synth_boxes/resnet50/cam/seed0/nbg0.1-alpha1")
CLASSIFIER_LOG = Path("logs/classifier/synth_boxes/resnet50/seed0.log")
DECODER_LOG = Path("logs/decoder/synth_boxes/resnet50/cam/seed0/nbg0.1-alpha1.log")
CLASSIFIER_JOB = "classifier@synth_boxes-resnet50-seed0"
DECODER_JOB = "decoder@synth_boxes-resnet50-cam-seed0-nbg0.1-alpha1"


def _mlflow_runs(ws: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("fcam").experiment_id], max_results=1000)


def _decoder_epochs_logged(ws: Path) -> list[int]:
    """The epochs (steps) the latest decoder run logged a validation score for."""
    from mlflow.tracking import MlflowClient

    latest = max(
        (r for r in _mlflow_runs(ws) if r.data.tags["job"] == DECODER_JOB), key=lambda r: r.info.start_time
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    return sorted(m.step for m in client.get_metric_history(latest.info.run_id, "val_localisation"))


@pytest.fixture(scope="module")
def killed_in_decoder_epoch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose run was killed inside a classifier epoch, rerun, and killed inside a decoder
    epoch; tests continue from copies of it."""
    ws = make_workspace(tmp_path_factory.mktemp("dag") / "ws", changes=TWO_EPOCHS)
    kill_after_state([*SNAKEMAKE, TARGET], ws, ws / CLASSIFIER_WORK / "resume.pt")
    assert not (ws / CLASSIFIER / "cam/seed0/best.pt").exists()
    run([*SNAKEMAKE, "--unlock", TARGET], ws)
    kill_after_state([*SNAKEMAKE, TARGET], ws, ws / DECODER / ".work/resume.pt")
    assert "resuming from" in (ws / CLASSIFIER_LOG).read_text()
    assert not (ws / CLASSIFIER_WORK).exists()
    assert not (ws / DECODER / "best.pt").exists()
    return ws


def _copy(ws: Path, dest: Path) -> Path:
    """A copy of a workspace (modification times kept: Snakemake compares them)."""
    shutil.copytree(ws, dest, symlinks=True)
    return dest


def test_killed_dag_resumes_classifier_and_decoder(killed_in_decoder_epoch, tmp_path):
    ws = _copy(killed_in_decoder_epoch, tmp_path / "ws")
    run([*SNAKEMAKE, "--unlock", TARGET], ws)
    run([*SNAKEMAKE, TARGET], ws)
    log = (ws / DECODER_LOG).read_text()
    assert re.search(r"resuming from \S+ \(epoch 1 done\)", log), log[-3000:]
    assert _decoder_epochs_logged(ws) == [2]
    assert (ws / TARGET).is_file()
    assert not list((ws / "results").rglob(".work"))
    assert "Nothing to be done" in run([*SNAKEMAKE, "-n", TARGET], ws).stdout

    # The runs of the killed jobs were ended as KILLED when the next Snakemake run started.
    runs = _mlflow_runs(ws)
    assert "RUNNING" not in {r.info.status for r in runs}
    statuses = Counter((r.data.tags["job"], r.info.status) for r in runs)
    for job in (CLASSIFIER_JOB, DECODER_JOB):
        assert (statuses[(job, "KILLED")], statuses[(job, "FINISHED")]) == (1, 1), statuses


def test_changed_classifier_restarts_the_killed_decoder(killed_in_decoder_epoch, tmp_path):
    """Issue #13, item 1: a decoder's resume state is tied to the content of its classifier and CAMs."""
    ws = _copy(killed_in_decoder_epoch, tmp_path / "ws")
    assert (ws / DECODER / ".work/resume.pt").is_file()
    run([*SNAKEMAKE, "--unlock", TARGET], ws)
    write_params(ws / "params.yaml", preset("smoke", {**TWO_EPOCHS, "classifier.lr": 0.02}))
    proc = run([*SNAKEMAKE, "--rerun-incomplete", TARGET], ws)
    ran = set(re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", proc.stdout + proc.stderr, flags=re.M))
    assert {"classifier", "cams", "decoder"} <= ran, proc.stderr[-4000:]
    log = (ws / DECODER_LOG).read_text()
    assert "resuming from" not in log, log[-3000:]
    assert "was saved for other inputs, parameters or code: starting over" in log, log[-3000:]
    assert _decoder_epochs_logged(ws) == [1, 2]
    assert (ws / TARGET).is_file()


def test_killed_while_finishing_reruns_and_leaves_no_temporaries(tmp_path):
    """Issue #13, item 2: a job killed while it puts its outputs in place is finished by the rerun."""
    ws = make_workspace(tmp_path / "ws", changes=ONE_DATASET)
    target = str(DECODER / "history.json")  # no evaluation: the decoder is the last job
    rerun = [*SNAKEMAKE, "--rerun-incomplete", target]

    # Killed the moment the classifier's first checkpoint is in place (the others are not yet).
    kill_when_written([*SNAKEMAKE, target], ws, str(CLASSIFIER / "cam/seed0/best.pt"))
    assert (ws / CLASSIFIER / "cam/seed0/best.pt").is_file()
    assert not (ws / CLASSIFIER / "shared/seed0/history.json").exists()
    run([*SNAKEMAKE, "--unlock", target], ws)

    # The rerun finishes the classifier without training; killed when the decoder's best.pt appears.
    kill_when_written(rerun, ws, str(DECODER / "best.pt"))
    log = (ws / CLASSIFIER_LOG).read_text()
    assert re.search(r"resuming from \S+ \(epoch 1 done\)", log), log[-3000:]
    assert len(list((ws / CLASSIFIER).glob("*/seed0/best.pt"))) == 6
    assert not (ws / CLASSIFIER_WORK).exists()
    assert (ws / DECODER / "best.pt").is_file()
    assert not (ws / DECODER / "last.pt").exists()
    run([*SNAKEMAKE, "--unlock", target], ws)

    # Killed again, with last.pt's temporary link made but not yet renamed into place.
    kill_when_written(rerun, ws, str(DECODER / ".last.pt.*.tmp"))
    assert list((ws / DECODER).glob(".last.pt.*.tmp"))
    run([*SNAKEMAKE, "--unlock", target], ws)

    run(rerun, ws)
    log = (ws / DECODER_LOG).read_text()
    assert re.search(r"resuming from \S+ \(epoch 1 done\)", log), log[-3000:]
    assert (ws / DECODER / "last.pt").is_file()
    assert not list((ws / "results").rglob(".*.tmp"))
    assert not list((ws / "results").rglob(".work"))
    assert "Nothing to be done" in run([*SNAKEMAKE, "-n", target], ws).stdout
