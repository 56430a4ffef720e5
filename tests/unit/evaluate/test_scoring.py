"""Maps are brought to the protocol's 224 x 224 the same way for selection and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcam.evaluate.scoring import to_eval_maps, validation_step


def test_to_eval_maps_upsamples_without_normalising_again():
    """Min-max happens at the CAM's own resolution (the authors' order): the upsampled map keeps
    the input's range, which bilinear interpolation never widens."""
    maps = torch.tensor([[[0.0, 0.4], [0.4, 1.0]]])
    out = to_eval_maps(maps)
    assert out.shape == (1, 224, 224)
    assert out.dtype == np.float64
    assert out.min() == pytest.approx(0.0)
    assert out.max() == pytest.approx(1.0)
    assert out[0, 0, 0] == pytest.approx(0.0)  # the corner pixel's centre lies outside the 2x2 grid: clamped
    raw = to_eval_maps(torch.tensor([[[0.2, 0.4], [0.4, 0.6]]]))
    assert raw.min() == pytest.approx(0.2)
    assert raw.max() == pytest.approx(0.6)
    expected = torch.nn.functional.interpolate(maps[:, None], size=224, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(out, expected[:, 0].double().numpy())


def test_a_constant_cam_stays_constant():
    out = to_eval_maps(torch.zeros(2, 7, 7))
    assert not out.any()


def test_validation_step_coarsens_boxes_only():
    assert validation_step("boxes", 0.004) == 0.004
    assert validation_step("masks", 0.004) == 0.001
