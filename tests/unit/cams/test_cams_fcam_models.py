"""compute_cams on fcam's own classifiers (``fcam.models.build_classifier``), at 64 x 64 (8 x 8 maps;
9 x 9 for InceptionV3 with the F-CAM code's padding)."""

from __future__ import annotations

import pytest
import torch

from fcam.cams import compute_cams
from fcam.constants import BACKBONES, CAM_METHODS
from fcam.models import build_classifier


@pytest.fixture(scope="module", params=BACKBONES)
def classifier(request):
    torch.manual_seed(0)
    classifier = build_classifier(request.param, num_classes=4, pretrained="none")
    # A random head can leave a class without one positive pixel (its ReLU'd map is all zero);
    # a non-negative head over ReLU features makes every class map reach 1 after normalisation.
    with torch.no_grad():
        classifier.fc.weight.abs_()
    return classifier


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


LABELS = torch.tensor([1, 3])


def test_every_method_on_every_backbone(classifier, images):
    classifier.train()
    for method in CAM_METHODS:
        cams, logits = compute_cams(classifier, images, LABELS, method, smooth_samples=2,
                                    generator=torch.Generator().manual_seed(0), return_logits=True)
        side = 9 if classifier.backbone == "inceptionv3" else 8
        assert cams.shape == (2, side, side), method
        assert torch.isfinite(cams).all(), method
        assert cams.amax(dim=(1, 2)).tolist() == [1.0, 1.0], method
        assert logits.shape == (2, 4)
    assert classifier.training
    assert all(p.grad is None for p in classifier.parameters())
    assert all(p.requires_grad for p in classifier.parameters())


def test_cam_equals_gradcam_on_fcam_head(classifier, images):
    """fcam's target layer feeds global average pooling + ``fc`` directly, so Grad-CAM == CAM."""
    cam = compute_cams(classifier, images, LABELS, "cam")
    gradcam = compute_cams(classifier, images, LABELS, "gradcam")
    torch.testing.assert_close(cam, gradcam, atol=1e-5, rtol=0)


def test_batched_equals_single_on_fcam_classifier(classifier, images):
    batched = compute_cams(classifier, images, LABELS, "gradcampp")
    singles = torch.cat([compute_cams(classifier, images[i : i + 1], LABELS[i : i + 1], "gradcampp")
                         for i in range(2)])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=0)
