"""Crash-resume through the CLI: a classifier job and a decoder job killed with SIGKILL mid-epoch resume
from their last finished epoch, and end with exactly the weights and history of an uninterrupted run (CPU).

Paths are fixed by the stage table, so the uninterrupted run and the interrupted one each have a
folder of their own, with the same parameter file and the same (deterministic) synthetic data.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.e2e.workspace import fcam, kill_after_state, preset, run, write_params

pytestmark = pytest.mark.slow

#: The smoke preset on one small dataset, two epochs of each phase, small batches: every epoch
#: lasts a few seconds on one CPU thread (the smoke preset's slim networks train ~200 images/s),
#: long enough to be killed inside the second.
CHANGES = {
    "device": "cpu",
    "datasets": {"synth_boxes": {"classifier": {}, "decoder": {}}},
    "synth": {"synth_boxes": {"classes": 2, "size": 40, "train": 640, "val": 8, "test": 8, "seed": 0}},
    "classifier.epochs": 2,
    "classifier.batch_size": 8,
    "decoder.epochs": 2,
    "decoder.batch_size": 8,
}
JOB = ["--ds", "synth_boxes", "--backbone", "resnet50", "--seed", "0"]
SETTING = "nbg0.1-alpha1"
CLASSIFIER = Path("results/classifier/synth_boxes/resnet50")
DECODER = Path(f"results/decoder/synth_boxes/resnet50/cam/seed0/{SETTING}")
CLASSIFIER_LOG = "logs/classifier/synth_boxes/resnet50/seed0.log"
DECODER_LOG = f"logs/decoder/synth_boxes/resnet50/cam/seed0/{SETTING}.log"

CLASSIFIER_CMD = fcam("--log", CLASSIFIER_LOG, "train-classifier", *JOB)
CAMS_CMD = fcam("--log", "logs/cams.log", "cache-cams", *JOB, "--method", "cam")
DECODER_CMD = fcam("--log", DECODER_LOG, "train-decoder", *JOB, "--method", "cam", "--setting", SETTING)


def _folder(root: Path) -> Path:
    root.mkdir(parents=True)
    write_params(root / "params.yaml", preset("smoke", CHANGES))
    run(fcam("data", "synth", "--ds", "synth_boxes"), root)
    return root


def _same_weights(a: Path, b: Path, key: str) -> None:
    wa = torch.load(a, weights_only=True)[key]
    wb = torch.load(b, weights_only=True)[key]
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), f"{b}: {name} differs from {a}"


def _inode_groups(paths: list[Path]) -> list[list[str]]:
    """The paths grouped by the file they are (hard links of one checkpoint share an inode)."""
    groups: dict[int, list[str]] = {}
    for path in paths:
        groups.setdefault(os.stat(path).st_ino, []).append(path.parts[-3])
    return sorted(sorted(g) for g in groups.values())


def _kill_mid_epoch(cmd: list[str], ws: Path, work: Path) -> None:
    kill_after_state(cmd, ws, ws / work / "resume.pt")
    assert (ws / work / "resume.pt").is_file()
    assert not (ws / work.parent / "history.json").exists()


def test_classifier_and_decoder_resume_after_sigkill(tmp_path):
    ref, ws = _folder(tmp_path / "uninterrupted"), _folder(tmp_path / "killed")

    # Phase 1: the shared classifier, its best epoch kept for each of the six CAM methods.
    history = CLASSIFIER / "shared/seed0/history.json"
    run(CLASSIFIER_CMD, ref)
    _kill_mid_epoch(CLASSIFIER_CMD, ws, history.parent / ".work")
    assert not list((ws / CLASSIFIER).glob("*/seed0/best.pt"))
    run(CLASSIFIER_CMD, ws)
    assert "resuming from" in (ws / CLASSIFIER_LOG).read_text()
    assert json.loads((ref / history).read_text()) == json.loads((ws / history).read_text())
    bests = sorted((ref / CLASSIFIER).glob("*/seed0/best.pt"))
    assert len(bests) == 6
    for best in bests:
        _same_weights(best, ws / best.relative_to(ref), "model")
    # methods that chose the same epoch share one file, after a resume too
    assert _inode_groups(bests) == _inode_groups([ws / b.relative_to(ref) for b in bests])
    assert not (ws / history.parent / ".work").exists()

    # Phase 2: the decoder, on the same CAMs (computed once, from identical classifiers).
    run(CAMS_CMD, ref)
    shutil.copytree(ref / "results/cams", ws / "results/cams")
    run(DECODER_CMD, ref)
    _kill_mid_epoch(DECODER_CMD, ws, DECODER / ".work")
    assert not (ws / DECODER / "best.pt").exists()
    run(DECODER_CMD, ws)
    assert "resuming from" in (ws / DECODER_LOG).read_text()
    _same_weights(ref / DECODER / "last.pt", ws / DECODER / "last.pt", "decoder")
    _same_weights(ref / DECODER / "best.pt", ws / DECODER / "best.pt", "decoder")
    expected = json.loads((ref / DECODER / "history.json").read_text())
    assert expected == json.loads((ws / DECODER / "history.json").read_text())
    assert [row["t"] for row in expected["history"]] == pytest.approx([1.0, 1.01])  # the barrier's t resumed
    assert not (ws / DECODER / ".work").exists()
