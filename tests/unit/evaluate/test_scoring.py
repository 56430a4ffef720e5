"""Maps are brought to the protocol's 224 x 224 the same way for selection and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcam.evaluate.scoring import to_eval_maps, validation_step


def test_to_eval_maps_normalises_after_upsampling():
    maps = torch.tensor([[[0.2, 0.4], [0.4, 0.6]]])
    out = to_eval_maps(maps, normalise=True)
    assert out.shape == (1, 224, 224)
    assert out.dtype == np.float64
    assert out.min() == 0.0
    assert out.max() == 1.0
    raw = to_eval_maps(maps, normalise=False)
    # F-CAM's probabilities are used as they are: the range stays that of the input (float32)
    assert raw.min() == pytest.approx(0.2)
    assert raw.max() == pytest.approx(0.6)


def test_constant_map_becomes_zeros():
    out = to_eval_maps(torch.full((2, 7, 7), 0.3), normalise=True)
    assert not out.any()


def test_validation_step_coarsens_boxes_only():
    assert validation_step("boxes", 0.004) == 0.004
    assert validation_step("masks", 0.004) == 0.001
