"""The decoder's validation search: the best validation score wins, and the test split plays no part."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from fcam.io import save_json
from fcam.train.select import choose
from tests.jobs import run_stage, spec, write_params


def _history(score: float, name: str, bg: float, alpha: float) -> dict:
    return {
        "best": {"localisation": score},
        "setting": {"name": name, "bg_fraction": bg, "pce_weight": alpha},
    }


def test_the_best_validation_score_wins_and_ties_go_to_the_first_point():
    assert choose([_history(40, "a", 0.1, 1), _history(55, "b", 0.2, 1), _history(50, "c", 0.3, 1)]) == 1
    assert choose([_history(55, "a", 0.1, 1), _history(55, "b", 0.2, 1)]) == 0


SEARCH = {"search.bg_fraction": [0.1, 0.3], "search.pce_weight": [1.0]}


def test_the_stage_links_the_chosen_decoder_and_records_every_candidate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, SEARCH)
    job = spec("select", ds="synth_boxes", backbone="resnet50", method="cam", seed=0)
    for path, bg, score in zip(job.paths("history_files"), (0.1, 0.3), (40.0, 60.0), strict=True):
        name = path.parent.name
        save_json(_history(score, name, bg, 1.0), path)
        (path.parent / "best.pt").write_bytes(f"best {name}".encode())
        (path.parent / "last.pt").write_bytes(f"last {name}".encode())
    run = run_stage("select", ds="synth_boxes", backbone="resnet50", method="cam", seed=0)
    assert job.path("best").read_bytes() == b"best nbg0.3-alpha1"
    assert os.path.samefile(job.path("last"), job.paths("last_files")[1])  # a link, not a copy
    choice = json.loads(job.path("choice").read_text())
    assert choice == {
        "setting": {"name": "nbg0.3-alpha1", "bg_fraction": 0.3, "pce_weight": 1.0},
        "score": 60.0,
        "candidates": {"nbg0.1-alpha1": 40.0, "nbg0.3-alpha1": 60.0},
    }
    assert run.metrics[0][0] == {"val_nbg0.1-alpha1": 40.0, "val_nbg0.3-alpha1": 60.0}
    assert run.tags == {"chosen_setting": "nbg0.3-alpha1"}


def test_the_choice_never_reads_the_test_split(tmp_path: Path, monkeypatch) -> None:
    """The search's decoders and its selection run with the test split gone: it cannot decide."""
    monkeypatch.chdir(tmp_path)
    write_params(
        tmp_path,
        {
            **SEARCH,
            "methods": ["cam"],
            "ablation.variants": {},
            "datasets": {"synth_boxes": {"classifier": {}, "decoder": {}}},
        },
    )
    wc = {"ds": "synth_boxes", "backbone": "resnet50", "seed": 0}
    run_stage("synth", ds="synth_boxes")
    run_stage("classifier", **wc)
    run_stage("cams", **wc, method="cam")  # caches the test split too, for the baseline evaluation
    shutil.rmtree(tmp_path / "data/metadata/synth_boxes/test")
    shutil.rmtree(tmp_path / "data/synth_boxes/images/test")
    for setting in ("nbg0.1-alpha1", "nbg0.3-alpha1"):
        run_stage("decoder", **wc, method="cam", setting=setting)
    run_stage("select", **wc, method="cam")
    choice = json.loads(spec("select", **wc, method="cam").path("choice").read_text())
    assert choice["setting"]["name"] in ("nbg0.1-alpha1", "nbg0.3-alpha1")
    assert set(choice["candidates"]) == {"nbg0.1-alpha1", "nbg0.3-alpha1"}
