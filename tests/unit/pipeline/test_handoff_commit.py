"""The hand-off's one-pass DVC commit writes the lock file ``dvc commit --force NAME...`` writes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fcam.pipeline.handoff import dvc_commit

DVC = Path(sys.executable).with_name("dvc")

DVC_YAML = """\
stages:
  make:
    foreach: [a, b, c]
    do:
      cmd: python make.py ${item}
      deps:
        - make.py
        - input.txt
      params:
        - size
      outs:
        - out/${item}.txt
        - out/${item}-dir
  total:
    cmd: cat out/a.txt out/b.txt > total.txt
    deps:
      - out/a.txt
      - out/b.txt
    outs:
      - total.txt
"""


def _repo(root: Path) -> Path:
    root.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(DVC), "init", "-q"], cwd=root, check=True, env=env)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("size: 3\n")
    (root / "make.py").write_text("# writes out/<item>.txt and out/<item>-dir/\n")
    (root / "input.txt").write_text("input\n")
    for item in "abc":
        (root / "out" / f"{item}-dir").mkdir(parents=True)
        (root / "out" / f"{item}.txt").write_text(f"{item}\n")
        (root / "out" / f"{item}-dir" / "part.txt").write_text(f"part of {item}\n")
    (root / "total.txt").write_text("a\nb\n")
    return root


@pytest.mark.skipif(not DVC.is_file(), reason="dvc is not installed beside this Python")
def test_one_pass_commit_equals_dvc_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["make@a", "make@c", "total"]
    by_cli = _repo(tmp_path / "cli")
    subprocess.run([str(DVC), "commit", "--force", "--quiet", *names], cwd=by_cli, check=True)
    ours = tmp_path / "ours"
    shutil.copytree(by_cli, ours, ignore=shutil.ignore_patterns("dvc.lock", "cache", "tmp"))
    monkeypatch.chdir(ours)
    dvc_commit(names)
    expected = yaml.safe_load((by_cli / "dvc.lock").read_text())
    assert sorted(expected["stages"]) == sorted(names)  # make@b was not built: not recorded
    assert yaml.safe_load((ours / "dvc.lock").read_text()) == expected
    # the outputs went into the cache, as dvc commit puts them
    status = subprocess.run(
        [str(DVC), "status", *names], cwd=ours, capture_output=True, text=True, check=True
    )
    assert "up to date" in status.stdout, status.stdout


@pytest.mark.skipif(not DVC.is_file(), reason="dvc is not installed beside this Python")
def test_one_pass_commit_of_a_missing_output_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    from dvc.exceptions import DvcException

    repo = _repo(tmp_path / "repo")
    (repo / "out" / "c.txt").unlink()
    monkeypatch.chdir(repo)
    with pytest.raises(DvcException):
        dvc_commit(["make@a", "make@c"])
    assert not (repo / "dvc.lock").exists()
