"""Fixtures of the models tests: random-init backbones (weights=None), built once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fcam.constants import BACKBONES
from fcam.models import WSOLClassifier, build_classifier


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # One thread: the forward passes here are small, and on the shared 2-core machine OpenMP
    # spin-waiting made 2 threads ~3x slower in wall time than 1. Restored for other test areas.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def classifiers() -> dict[str, WSOLClassifier]:
    """One eval-mode classifier (200 classes, seed 0) per backbone; tests must not modify them."""
    torch.manual_seed(0)
    return {b: build_classifier(b, 200).eval() for b in BACKBONES}
