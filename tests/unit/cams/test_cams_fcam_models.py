"""compute_cams on fcam's own classifiers (``fcam.models.build_classifier``), at 64 x 64 (8 x 8 maps;
9 x 9 for InceptionV3 with the F-CAM code's padding)."""

from __future__ import annotations

import copy

import pytest
import torch

from fcam.cam_twins import computed_as, computed_methods
from fcam.cams import compute_cams, compute_cams_multi
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


@pytest.mark.parametrize("reference", [False, True])
def test_twins_give_their_computed_methods_maps(classifier, images, reference):
    """fcam.cam_twins: on every backbone a twin's maps are its computed method's (the target layer
    feeds global average pooling + ``fc``), and the other methods' maps differ from CAM's."""
    signed = copy.deepcopy(classifier)
    with torch.no_grad():  # negative evidence too, so that CAM != LayerCAM and CAM* != Grad-CAM
        signed.fc.weight[:, ::2].neg_()
    maps, _ = compute_cams_multi(signed, images, LABELS, CAM_METHODS, reference=reference,
                                 smooth_samples=2, generator=torch.Generator().manual_seed(0))
    for method in CAM_METHODS:
        torch.testing.assert_close(maps[method], maps[computed_as(method, reference)], atol=1e-5, rtol=0)
    first, *others = computed_methods(CAM_METHODS, reference)
    for other in others:  # (Grad-CAM++ and LayerCAM may nearly agree on a random network)
        assert float((maps[first] - maps[other]).abs().max()) > 1e-2, other


def test_batched_equals_single_on_fcam_classifier(classifier, images):
    batched = compute_cams(classifier, images, LABELS, "gradcampp")
    singles = torch.cat([compute_cams(classifier, images[i : i + 1], LABELS[i : i + 1], "gradcampp")
                         for i in range(2)])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=0)
