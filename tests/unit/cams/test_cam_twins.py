"""Which methods are twins (fcam.cam_twins); their maps are compared in test_cams_fcam_models.py."""

from __future__ import annotations

import pytest

from fcam.cam_twins import computed_as, computed_methods, twins_of
from fcam.constants import CAM_METHODS


def test_textbook_methods_form_three_groups() -> None:
    assert computed_methods(CAM_METHODS, reference=False) == ["cam", "gradcampp", "layercam"]
    assert {m: computed_as(m, False) for m in CAM_METHODS} == {
        "cam": "cam",
        "gradcam": "cam",
        "gradcampp": "gradcampp",
        "smoothgradcampp": "gradcampp",
        "xgradcam": "cam",
        "layercam": "layercam",
    }
    assert twins_of("cam", CAM_METHODS, False) == ["gradcam", "xgradcam"]
    assert twins_of("layercam", CAM_METHODS, False) == []


def test_the_authors_variants_keep_only_gradcam_and_xgradcam_together() -> None:
    assert computed_methods(CAM_METHODS, reference=True) == [
        "cam", "gradcam", "gradcampp", "smoothgradcampp", "layercam"
    ]
    assert twins_of("gradcam", CAM_METHODS, True) == ["xgradcam"]


def test_a_twin_alone_is_served_by_its_computed_method() -> None:
    assert computed_methods(["xgradcam", "layercam", "gradcam"], reference=False) == ["cam", "layercam"]


def test_an_unknown_method_is_named() -> None:
    with pytest.raises(ValueError, match="unknown CAM method 'scorecam'"):
        computed_as("scorecam", False)
