"""Resume state: kept for the same configuration, ignored for another or when unreadable."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from fcam.train.resume import config_fingerprint, load_resume_state, save_resume_state


@dataclass(frozen=True)
class _Cfg:
    lr: float = 0.1
    device: str = "cpu"
    out_dir: Path = Path("a")


def test_fingerprint_ignores_where_it_runs_but_not_what_it_learns():
    cfg = _Cfg()
    assert config_fingerprint(cfg) == config_fingerprint(replace(cfg, device="cuda", out_dir=Path("b")))
    assert config_fingerprint(cfg) != config_fingerprint(replace(cfg, lr=0.2))


def test_state_round_trip_and_mismatch(tmp_path):
    path = tmp_path / ".work" / "resume.pt"
    fp = config_fingerprint(_Cfg())
    save_resume_state(path, {"epoch": 3, "w": torch.arange(3)}, fp)
    state = load_resume_state(path, fp)
    assert state["epoch"] == 3
    assert torch.equal(state["w"], torch.arange(3))
    assert load_resume_state(path, config_fingerprint(_Cfg(lr=0.5))) is None
    path.write_bytes(b"garbage")
    assert load_resume_state(path, fp) is None
    assert load_resume_state(tmp_path / "none.pt", fp) is None
