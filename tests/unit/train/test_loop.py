"""The shared training skeleton: resume keyed by content, selection, restartable finishing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fcam.io import load_checkpoint, save_checkpoint
from fcam.train.loop import FitResult, finish, fit, job_fingerprint, prepare_outputs
from tests.jobs import FakeRun


class Counter:
    """A toy phase: its 'weights' count the epochs; validation scores follow a script."""

    def __init__(self, scores: dict[int, dict[str, float]]) -> None:
        self.scores, self.epoch, self.trained = scores, 0, []

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.epoch = epoch
        self.trained.append(epoch)
        return {"train_loss": 1.0 / epoch}

    def validate(self) -> dict[str, float]:
        return self.scores[self.epoch]

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return {"weights": epoch}


SCORES = {0: {"a": 5.0, "b": 5.0}, 1: {"a": 1.0, "b": 9.0}, 2: {"a": 7.0, "b": 2.0}, 3: {"a": 7.0, "b": 9.5}}


def test_each_key_keeps_its_best_epoch_and_keys_sharing_an_epoch_share_a_file(tmp_path: Path) -> None:
    phase = Counter(SCORES)
    result = fit(phase, keys=("a", "b"), epochs=3, work=tmp_path / ".work", fingerprint="f", run=FakeRun())
    assert result.best == {"a": 7.0, "b": 9.5}
    assert result.best_epoch == {"a": 2, "b": 3}  # ties keep the earlier epoch
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert load_checkpoint(tmp_path / ".work/best-a.pt")["weights"] == 2
    assert load_checkpoint(tmp_path / ".work/last.pt")["weights"] == 3
    same = Counter({1: {"a": 1.0, "b": 1.0}})
    fit(same, keys=("a", "b"), epochs=1, work=tmp_path / "w2", fingerprint="f", run=FakeRun())
    assert os.path.samefile(tmp_path / "w2/best-a.pt", tmp_path / "w2/best-b.pt")


def test_epoch_zero_is_a_candidate_when_asked(tmp_path: Path) -> None:
    result = fit(
        Counter(SCORES),
        keys=("a",),
        epochs=1,
        work=tmp_path / "w",
        fingerprint="f",
        run=FakeRun(),
        validate_first=True,
    )
    assert result.best_epoch == {"a": 0}
    assert result.history[0] == {"epoch": 0, "val_a": 5.0, "val_b": 5.0}  # b is logged, selects nothing


def test_a_rerun_resumes_only_with_the_same_fingerprint(tmp_path: Path) -> None:
    work = tmp_path / ".work"
    fit(Counter(SCORES), keys=("a",), epochs=2, work=work, fingerprint="f1", run=FakeRun())
    again = Counter(SCORES)
    result = fit(again, keys=("a",), epochs=3, work=work, fingerprint="f1", run=FakeRun())
    assert again.trained == [3]  # epochs 1 and 2 resumed from the saved state
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    other = Counter(SCORES)
    fit(other, keys=("a",), epochs=3, work=work, fingerprint="f2", run=FakeRun())
    assert other.trained == [1, 2, 3]  # another configuration: from scratch


def test_fingerprint_is_keyed_by_content_not_paths(tmp_path: Path) -> None:
    """The bug of issue 13: a changed checkpoint at the same path must not resume the old state."""
    ckpt, data, code = tmp_path / "best.pt", tmp_path / "data", tmp_path / "code.py"
    ckpt.write_bytes(b"classifier v1")
    data.mkdir()
    (data / "a.png").write_bytes(b"image")
    code.write_text("x = 1")
    base = job_fingerprint({"lr": 0.1}, [ckpt, data], [code])
    assert base == job_fingerprint({"lr": 0.1}, [ckpt, data], [code])
    ckpt.write_bytes(b"classifier v2")
    assert job_fingerprint({"lr": 0.1}, [ckpt, data], [code]) != base
    ckpt.write_bytes(b"classifier v1")
    (data / "a.png").write_bytes(b"edited")
    assert job_fingerprint({"lr": 0.1}, [ckpt, data], [code]) != base
    (data / "a.png").write_bytes(b"image")
    code.write_text("x = 2")
    assert job_fingerprint({"lr": 0.1}, [ckpt, data], [code]) != base
    code.write_text("x = 1")
    assert job_fingerprint({"lr": 0.2}, [ckpt, data], [code]) != base
    assert job_fingerprint({"lr": 0.1}, [ckpt, data], [code]) == base


def _outputs(tmp_path: Path) -> dict[Path, str]:
    return {tmp_path / "out/a/best.pt": "a", tmp_path / "out/b/best.pt": "b"}


def test_finishing_killed_at_any_point_finishes_on_the_rerun(tmp_path: Path, monkeypatch) -> None:
    """The bug of issue 13: files moved out of .work, then outputs deleted by Snakemake -> fail forever."""
    work, history = tmp_path / ".work", tmp_path / "out/history.json"
    result = fit(Counter(SCORES), keys=("a", "b"), epochs=3, work=work, fingerprint="f", run=FakeRun())
    # Kill 1: during finishing, after the first output was put in place.
    import fcam.train.loop as loop

    calls = []
    real = loop.link_or_copy

    def dies_on_second(src, dest):
        calls.append(dest)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is killed here
        real(src, dest)

    monkeypatch.setattr(loop, "link_or_copy", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        finish(work, result, best=_outputs(tmp_path), history=history, last=tmp_path / "out/last.pt")
    monkeypatch.setattr(loop, "link_or_copy", real)
    # The scheduler deletes the declared outputs of the interrupted job, then reruns it.
    for path in [*_outputs(tmp_path), history]:
        path.unlink(missing_ok=True)
    rerun = Counter(SCORES)
    result = fit(rerun, keys=("a", "b"), epochs=3, work=work, fingerprint="f", run=FakeRun())
    assert rerun.trained == []  # nothing to train again
    finish(work, result, best=_outputs(tmp_path), history=history, last=tmp_path / "out/last.pt")
    assert load_checkpoint(tmp_path / "out/a/best.pt")["weights"] == 2
    assert load_checkpoint(tmp_path / "out/b/best.pt")["weights"] == 3
    assert load_checkpoint(tmp_path / "out/last.pt")["weights"] == 3
    assert not work.exists()


def test_temporaries_of_a_killed_attempt_do_not_outlive_the_rerun(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".last.pt.k2j3.tmp", out / ".best.pt.x9.tmp", out / ".best.pt.old"]
    for path in stale:
        path.write_bytes(b"half written")
    (out / ".other.json.a1.tmp").write_bytes(b"another job's")
    prepare_outputs([out / "last.pt", out / "best.pt"])
    assert not any(p.exists() for p in stale)
    assert (out / ".other.json.a1.tmp").exists()  # not this job's output: left alone


def test_a_state_saved_by_another_version_is_ignored(tmp_path: Path) -> None:
    work = tmp_path / ".work"
    work.mkdir()
    (work / "resume.pt").write_bytes(b"garbage")
    phase = Counter(SCORES)
    fit(phase, keys=("a",), epochs=1, work=work, fingerprint="f", run=FakeRun())
    assert phase.trained == [1]
    save_checkpoint({"epoch": 1}, work / "resume.pt")  # no fingerprint at all
    again = Counter(SCORES)
    fit(again, keys=("a",), epochs=1, work=work, fingerprint="f", run=FakeRun())
    assert again.trained == [1]


def test_history_file_holds_the_selection(tmp_path: Path) -> None:
    result = FitResult(best={"a": 1.0}, best_epoch={"a": 1}, history=[{"epoch": 1, "val_a": 1.0}])
    work = tmp_path / ".work"
    work.mkdir()
    save_checkpoint({"weights": 1}, work / "best-a.pt")
    finish(
        work, result, best={tmp_path / "a.pt": "a"}, history=tmp_path / "h.json", summary={"methods": ["a"]}
    )
    import json

    assert json.loads((tmp_path / "h.json").read_text()) == {
        "history": [{"epoch": 1, "val_a": 1.0}],
        "best": {"a": 1.0},
        "best_epoch": {"a": 1},
        "methods": ["a"],
    }


def test_one_key_fills_several_outputs(tmp_path: Path) -> None:
    """Twin methods' outputs receive their computed method's checkpoint."""
    result = FitResult(best={"cam": 1.0}, best_epoch={"cam": 2}, history=[])
    work = tmp_path / ".work"
    work.mkdir()
    save_checkpoint({"weights": 7}, work / "best-cam.pt")
    outputs = {tmp_path / m / "best.pt": "cam" for m in ("cam", "gradcam", "xgradcam")}
    finish(work, result, best=outputs, history=tmp_path / "h.json")
    assert [load_checkpoint(p)["weights"] for p in outputs] == [7, 7, 7]
    assert not work.exists()
