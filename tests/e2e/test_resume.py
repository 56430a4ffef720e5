"""Crash-resume: a classifier job and a decoder job killed with SIGKILL mid-epoch resume from their
last finished epoch, and end with exactly the weights and history of an uninterrupted run (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.e2e.workspace import BIN, kill_after_state, run

pytestmark = pytest.mark.slow

COMMON = [
    "--ds",
    "synth_boxes",
    "--backbone",
    "resnet50",
    "--dataset-root",
    "data/synth_boxes",
    "--metadata-root",
    "data/metadata/synth_boxes",
    "--resize-size",
    "40",
    "--crop-size",
    "32",
    "--batch-size",
    "8",
    "--epochs",
    "3",
    "--threads",
    "1",
    "--device",
    "cpu",
]


def _same_weights(a: Path, b: Path, key: str) -> None:
    wa = torch.load(a, weights_only=True)[key]
    wb = torch.load(b, weights_only=True)[key]
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_classifier_and_decoder_resume_after_sigkill(tmp_path):
    ws = tmp_path
    run(
        [
            str(BIN / "fcam"),
            "data",
            "synth",
            "--ds",
            "synth_boxes",
            "--root",
            "data/synth_boxes",
            "--metadata-root",
            "data/metadata/synth_boxes",
            "--classes",
            "2",
            "--size",
            "40",
            "--train",
            "64",
            "--val",
            "8",
            "--test",
            "8",
        ],
        ws,
    )

    def classifier(out: str) -> list[str]:
        return [
            str(BIN / "fcam"),
            "--log",
            f"logs/{out}.log",
            "train-classifier",
            *COMMON,
            "--lr",
            "0.002",
            "--methods",
            "cam",
            "--out-dir",
            out,
        ]

    run(classifier("clf_ref"), ws)
    kill_after_state(classifier("clf"), ws, ws / "clf" / ".work" / "resume.pt")
    assert (ws / "clf" / ".work" / "resume.pt").is_file()
    assert not (ws / "clf" / "last.pt").exists()
    run(classifier("clf"), ws)
    assert "resuming from" in (ws / "logs" / "clf.log").read_text()
    _same_weights(ws / "clf_ref" / "last.pt", ws / "clf" / "last.pt", "model")
    _same_weights(ws / "clf_ref" / "cam" / "best.pt", ws / "clf" / "cam" / "best.pt", "model")
    assert json.loads((ws / "clf_ref" / "history.json").read_text()) == json.loads(
        (ws / "clf" / "history.json").read_text()
    )
    assert not (ws / "clf" / ".work").exists()

    run(
        [
            str(BIN / "fcam"),
            "cache-cams",
            *COMMON[:8],
            "--method",
            "cam",
            "--splits",
            "train",
            "--checkpoint",
            "clf/cam/best.pt",
            "--resize-size",
            "40",
            "--crop-size",
            "32",
            "--device",
            "cpu",
            "--out-dir",
            "cams",
        ],
        ws,
    )

    def decoder(out: str) -> list[str]:
        return [
            str(BIN / "fcam"),
            "--log",
            f"logs/{out}.log",
            "train-decoder",
            *COMMON,
            "--method",
            "cam",
            "--lr",
            "0.01",
            "--classifier",
            "clf/cam/best.pt",
            "--cams",
            "cams/train.pt",
            "--out-dir",
            out,
            "--crf-weight",
            "3e-7",
            "--crf-sigma-xy",
            "15",
        ]

    run(decoder("dec_ref"), ws)
    kill_after_state(decoder("dec"), ws, ws / "dec" / ".work" / "resume.pt")
    run(decoder("dec"), ws)
    assert "resuming from" in (ws / "logs" / "dec.log").read_text()
    _same_weights(ws / "dec_ref" / "last.pt", ws / "dec" / "last.pt", "decoder")
    _same_weights(ws / "dec_ref" / "best.pt", ws / "dec" / "best.pt", "decoder")
    ref = json.loads((ws / "dec_ref" / "history.json").read_text())
    assert ref == json.loads((ws / "dec" / "history.json").read_text())
    assert [row["t"] for row in ref["history"]] == pytest.approx([1.0, 1.01, 1.0201])
