"""Fixtures of the data tests: the tiny hand-made dataset and small synthetic benchmarks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fcam.data.synthetic import make_synthetic

FIXTURES = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="session")
def tiny_root() -> Path:
    """Root of the tiny dataset in tests/data (read-only)."""
    return FIXTURES / "tiny"


@pytest.fixture
def tiny_split(tmp_path: Path):
    """Copy the tiny metadata of kind ``boxes`` or ``masks`` to a temp folder that tests may edit."""

    def copy(kind: str) -> Path:
        dst = tmp_path / f"tiny_{kind}" / "test"
        shutil.copytree(FIXTURES / "metadata" / f"tiny_{kind}" / "test", dst)
        return dst

    return copy


def _synth(root: Path, flavour: str) -> tuple[Path, Path]:
    data, meta = root / f"synth_{flavour}", root / "metadata" / f"synth_{flavour}"
    make_synthetic(
        data, meta, flavour=flavour, num_classes=5, n_train=12, n_val=6, n_test=10, size=64, seed=3
    )
    return data, meta


@pytest.fixture(scope="session")
def synth_boxes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, metadata root) of a small synthetic box dataset (read-only)."""
    return _synth(tmp_path_factory.mktemp("synth"), "boxes")


@pytest.fixture(scope="session")
def synth_masks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, metadata root) of a small synthetic mask dataset (read-only)."""
    return _synth(tmp_path_factory.mktemp("synth"), "masks")
