"""Fixtures and checks shared by the whole suite: tests never write the user's MLflow store.

Every test runs with ``MLFLOW_TRACKING_URI`` at a SQLite store of its own in a temporary folder,
which the processes it starts inherit, and without the pipeline's tracking variables of the
shell it was started from. :class:`tests.hygiene.StoreHygiene` fails the session when the
repository's store changed all the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fcam.tracking import PIPELINE_RUN_ENV, PIPELINE_STARTED_ENV, UI_URL_ENV
from tests.hygiene import StoreHygiene

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(StoreHygiene(REPO), "fcam-store-hygiene")


@pytest.fixture(autouse=True)
def _own_mlflow_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLflow store for each test, in the environment its subprocesses inherit."""
    store = tmp_path_factory.mktemp("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    for name in (PIPELINE_RUN_ENV, PIPELINE_STARTED_ENV, UI_URL_ENV, "DVC_EXP_NAME", "FCAM_JOB_SERVER"):
        monkeypatch.delenv(name, raising=False)
    return store
