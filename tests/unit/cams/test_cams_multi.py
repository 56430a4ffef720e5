"""compute_cams_multi: several methods from one shared clean pass, each exactly as compute_cams alone."""

from __future__ import annotations

import pytest
import torch

from fcam.cams import CAM, GradCAM, compute_cams, compute_cams_multi
from fcam.cams.core import run_cams
from fcam.constants import CAM_METHODS
from fcam.models import build_classifier

SAMPLES = 2
GRADIENT_METHODS = {"gradcam", "gradcampp", "xgradcam", "layercam"}


def _smooth(seed: int = 0) -> dict:
    return {"smooth_samples": SAMPLES, "smooth_std": 0.3, "generator": torch.Generator().manual_seed(seed)}


def _assert_same_as_one_by_one(model, images, labels, methods, **kwargs):
    multi, logits = compute_cams_multi(model, images, labels, methods, **kwargs, **_smooth())
    assert list(multi) == list(methods)
    for method in methods:
        single, single_logits = compute_cams(model, images, labels, method, **kwargs, **_smooth(),
                                             return_logits=True)
        assert multi[method].dtype == torch.float32, method
        assert torch.equal(multi[method], single), method
        assert torch.equal(logits, single_logits), method
    assert not logits.requires_grad


@pytest.fixture(scope="module")
def fcam_resnet50():
    torch.manual_seed(0)
    return build_classifier("resnet50", num_classes=4, pretrained="none")


@pytest.fixture(scope="module")
def fcam_images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("reference", [False, True], ids=["textbook", "reference"])
def test_every_method_equals_compute_cams_on_fcam_resnet50(fcam_resnet50, fcam_images, reference):
    _assert_same_as_one_by_one(fcam_resnet50, fcam_images, torch.tensor([1, 3, 0]), CAM_METHODS,
                               reference=reference)


@pytest.mark.parametrize("reference", [False, True], ids=["textbook", "reference"])
def test_every_method_equals_compute_cams_on_torchvision_resnet18(
    resnet18, resnet_images, resnet_labels, reference
):
    _assert_same_as_one_by_one(resnet18, resnet_images, resnet_labels, CAM_METHODS[::-1],
                               target_layer=resnet18.layer4, reference=reference)


@pytest.mark.parametrize("methods", [
    ("cam",), ("gradcampp",), ("smoothgradcampp",), ("cam", "smoothgradcampp"),
    ("layercam", "cam", "xgradcam"), ("smoothgradcampp", "gradcam"), CAM_METHODS,
], ids="+".join)
def test_passes_per_subset(tiny_net, tiny_images, monkeypatch, methods):
    """One forward for the clean pass, one backward only if a method reads its gradient, and
    Smooth-Grad-CAM++'s noisy passes (a forward and a backward each) only if it is listed."""
    calls = {"forward": 0, "grad": 0}
    real_grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls["grad"] += 1
        return real_grad(*args, **kwargs)

    def count_forward(module, inputs, output):
        calls["forward"] += 1

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    labels = torch.tensor([0, 1, 2, 3])
    handle = tiny_net.register_forward_hook(count_forward)
    try:
        compute_cams_multi(tiny_net, tiny_images, labels, methods, **_smooth())
    finally:
        handle.remove()
    noisy = SAMPLES if "smoothgradcampp" in methods else 0
    clean_backward = int(bool(GRADIENT_METHODS.intersection(methods)))
    assert calls == {"forward": 1 + noisy, "grad": clean_backward + noisy}
    monkeypatch.undo()
    _assert_same_as_one_by_one(tiny_net, tiny_images, labels, methods)


def test_model_state_is_restored_and_no_grad_leaks(tiny_net, tiny_images):
    tiny_net.train()
    tiny_net.body[1].eval()
    tiny_net.body[0].weight.requires_grad_(False)
    modes = {name: m.training for name, m in tiny_net.named_modules()}
    flags = {name: p.requires_grad for name, p in tiny_net.named_parameters()}
    hooks = sum(len(m._forward_hooks) for m in tiny_net.modules())

    compute_cams_multi(tiny_net, tiny_images, torch.tensor([0, 1, 2, 3]), CAM_METHODS, **_smooth())

    assert {name: m.training for name, m in tiny_net.named_modules()} == modes
    assert {name: p.requires_grad for name, p in tiny_net.named_parameters()} == flags
    assert sum(len(m._forward_hooks) for m in tiny_net.modules()) == hooks
    assert all(p.grad is None for p in tiny_net.parameters())


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_works_inside_no_grad_contexts(tiny_net, tiny_images, context):
    labels = torch.tensor([0, 1, 2, 3])
    expected, expected_logits = compute_cams_multi(tiny_net, tiny_images, labels, CAM_METHODS, **_smooth())
    with context():
        images = tiny_images.clone()  # an inference tensor under inference_mode
        inside, logits = compute_cams_multi(tiny_net, images, labels, CAM_METHODS, **_smooth())
    assert all(torch.equal(inside[m], expected[m]) for m in CAM_METHODS)
    assert torch.equal(logits, expected_logits)


def test_non_finite_maps_name_the_method(tiny_net, tiny_images):
    tiny_images[2, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"^LayerCAM: non-finite map for images \[2\]"):
        compute_cams_multi(tiny_net, tiny_images, torch.tensor([0, 1, 2, 3]), ["layercam", "cam"])


@pytest.mark.parametrize(("methods", "error", "message"), [
    ([], ValueError, r"methods is empty; expected one or more of cam, gradcam, "),
    (["cam", "scorecam", "gradcam", "eigencam"], ValueError,
     r"unknown CAM methods 'scorecam', 'eigencam'; expected one of cam, gradcam, "),
    (["cam", "layercam", "cam", "layercam", "gradcam"], ValueError,
     r"CAM methods listed more than once: 'cam', 'layercam'$"),
    ("gradcam", TypeError, r"methods must be a sequence of CAM method names, not the string 'gradcam'"),
])
def test_bad_method_lists(tiny_net, tiny_images, methods, error, message):
    with pytest.raises(error, match=message):
        compute_cams_multi(tiny_net, tiny_images, torch.tensor([0, 1, 2, 3]), methods)


def test_run_cams_needs_one_model_and_layer(tiny_net, tiny_images, resnet18):
    labels = torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match="run_cams needs at least one CAM method"):
        run_cams([], tiny_images, labels)
    with pytest.raises(ValueError, match="GradCAM and CAM do not share the same model and target layer"):
        run_cams([CAM(tiny_net), GradCAM(tiny_net, tiny_net.body[0])], tiny_images, labels)
    with pytest.raises(ValueError, match="GradCAM and CAM do not share the same model and target layer"):
        run_cams([CAM(tiny_net), GradCAM(resnet18, resnet18.layer4)], tiny_images, labels)
