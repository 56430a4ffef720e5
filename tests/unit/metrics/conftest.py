"""Fixtures of the metrics tests (generators in ``_maps.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.metrics._maps import make_set


@pytest.fixture(scope="session")
def random_set() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The maps the sweep must get exactly right in the default (fast) run."""
    return make_set(20220104)
