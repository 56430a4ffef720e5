"""Helpers for tests that run pipeline jobs in a temporary folder, as the ``fcam`` CLI does.

A test changes into its own folder (``monkeypatch.chdir``), writes a parameter file there with
:func:`write_params` (the smoke preset with some keys changed) and runs stages with
:func:`run_stage`: the same :class:`~fcam.pipeline.stages.JobSpec` and runner as ``fcam <stage>``,
with a :class:`FakeRun` in place of MLflow.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fcam.pipeline.params import apply_overrides, load_params
from fcam.pipeline.stages import JobSpec, Pipeline

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "workflow" / "presets"


class FakeRun:
    """Records what a job logs to its MLflow run."""

    def __init__(self) -> None:
        self.metrics: list[tuple[dict[str, float | None], int | None]] = []
        self.artifacts: list[Path] = []
        self.tags: dict[str, str] = {}

    def log_metrics(self, metrics: Mapping[str, float | None], step: int | None = None) -> None:
        self.metrics.append((dict(metrics), step))

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self.artifacts.append(Path(path))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)

    def log_params(self, params: Any) -> None:
        pass


def preset(name: str = "smoke") -> dict[str, Any]:
    """A preset of the repository as a dict."""
    return yaml.safe_load((PRESETS / f"{name}.yaml").read_text())


def write_params(
    folder: Path, changes: Mapping[str, Any] | None = None, *, base: str = "smoke", name: str = "params.yaml"
) -> Path:
    """Write ``<folder>/<name>``: preset ``base`` with dotted keys set (``{"decoder.lr": 0.1}``)."""
    data = apply_overrides(copy.deepcopy(preset(base)), changes or {})
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def spec(stage: str, params: str = "params.yaml", **wildcards: Any) -> JobSpec:
    """The job of ``stage`` with these wildcards (relative paths: run from the test's folder)."""
    pipeline = Pipeline(load_params(params))
    return pipeline.spec(stage, {k: str(v) for k, v in wildcards.items()}, params_file=params)


def run_stage(stage: str, params: str = "params.yaml", **wildcards: Any) -> FakeRun:
    """Run one job of ``stage`` in the current folder; returns what it logged."""
    job = spec(stage, params, **wildcards)
    pipeline = Pipeline(load_params(params))
    module, _, function = pipeline.stage(stage).runner.partition(":")
    tracker = FakeRun()
    getattr(importlib.import_module(module), function)(job, tracker)
    return tracker
