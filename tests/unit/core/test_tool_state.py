"""Third-party tools leave the user's home alone: MLflow's telemetry is off unless asked for, and
the figures job gives matplotlib a private folder that goes away with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fcam.runtime import private_matplotlib_dir


def _python(code: str, home: Path, tmp: Path, **env: str) -> list[str]:
    """Run ``code`` in a fresh interpreter with HOME and TMPDIR at empty folders; its stdout lines."""
    base = {
        k: v
        for k, v in os.environ.items()
        # MLflow turns telemetry off under pytest by itself; XDG_* and MPLCONFIGDIR would move
        # per-user files away from HOME, where this test looks for them.
        if k != "PYTEST_CURRENT_TEST" and not k.startswith(("MLFLOW_", "XDG_")) and k != "MPLCONFIGDIR"
    }
    home.mkdir()
    tmp.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "HOME": str(home), "TMPDIR": str(tmp), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_mlflow_client_writes_nothing_into_home(tmp_path):
    code = (
        "import fcam, os\n"
        "from mlflow.tracking import MlflowClient\n"
        f"MlflowClient(tracking_uri='sqlite:///{tmp_path}/mlflow.db').search_experiments()\n"
        "print(os.environ.get('MLFLOW_DISABLE_TELEMETRY'))\n"
    )
    out = _python(code, tmp_path / "home", tmp_path / "tmp")
    assert _files(tmp_path / "home") == []  # without fcam's default: .config/mlflow/telemetry.json
    assert out == ["true"]


def test_mlflow_telemetry_stays_a_user_choice(tmp_path):
    code = "import fcam, os\nprint(os.environ['MLFLOW_DISABLE_TELEMETRY'])\n"
    out = _python(code, tmp_path / "home", tmp_path / "tmp", MLFLOW_DISABLE_TELEMETRY="false")
    assert out == ["false"]


def test_matplotlib_gets_a_private_folder_removed_at_exit(tmp_path):
    code = (
        "from fcam.runtime import private_matplotlib_dir\n"
        "print(private_matplotlib_dir())\n"
        "import matplotlib, matplotlib.font_manager\n"
        "matplotlib.font_manager.fontManager  # builds and saves the font cache\n"
        "print(matplotlib.get_configdir())\n"
        "print(matplotlib.get_cachedir())\n"
    )
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    private, configdir, cachedir = _python(code, home, tmp)
    assert Path(private).parent == tmp
    assert configdir == cachedir == private
    assert not Path(private).exists()
    assert _files(home) == []  # without it: .config/matplotlib/ and .cache/matplotlib/fontlist-*.json


def test_matplotlib_folder_of_the_user_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path))
    assert private_matplotlib_dir() is None
    assert os.environ["MPLCONFIGDIR"] == str(tmp_path)


def test_matplotlib_already_imported_is_left_alone(monkeypatch):
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", pytest)  # any module object will do
    assert private_matplotlib_dir() is None
    assert "MPLCONFIGDIR" not in os.environ
