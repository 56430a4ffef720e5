"""The shared machinery: normalisation, batching, model state, hooks, passes, and bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcam.cams import BaseCAM, GradCAM, compute_cams, linear_head, minmax_normalize
from fcam.constants import CAM_METHODS

SMOOTH = {"smooth_samples": 2, "smooth_std": 0.3}


def _cams(model, images, labels, method, **kwargs):
    if method == "smoothgradcampp":
        kwargs = {**SMOOTH, "generator": torch.Generator().manual_seed(0), **kwargs}
    return compute_cams(model, images, labels, method, **kwargs)


def test_minmax_normalize_hand_values():
    maps = torch.tensor([[[1.0, 3.0], [5.0, 9.0]], [[2.0, 2.0], [2.0, 2.0]], [[-4.0, 0.0], [0.0, -2.0]]])
    expected = torch.tensor([[[0.0, 0.25], [0.5, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.5]]])
    assert torch.equal(minmax_normalize(maps), expected)
    assert minmax_normalize(torch.zeros(0, 3, 3)).shape == (0, 3, 3)


@pytest.mark.parametrize("method", CAM_METHODS)
def test_output_contract(tiny_net, tiny_images, method):
    labels = torch.tensor([0, 1, 2, 3])
    cams, logits = _cams(tiny_net, tiny_images, labels, method, return_logits=True)
    assert cams.shape == (4, 8, 8)
    assert cams.dtype == torch.float32
    assert torch.isfinite(cams).all()
    assert cams.min() == 0
    assert cams.max() == 1
    with torch.no_grad():
        expected = tiny_net.eval()(tiny_images)
    torch.testing.assert_close(logits, expected, atol=1e-12, rtol=0)
    assert not logits.requires_grad


@pytest.mark.parametrize("method", CAM_METHODS)
def test_batched_equals_one_image_at_a_time(resnet18, resnet_images, resnet_labels, method, monkeypatch):
    if method == "smoothgradcampp":
        # Same noise for both runs: pass m uses noise[m] for the batch, noise[m][i] for image i.
        noise = torch.randn(2, *resnet_images.shape, generator=torch.Generator().manual_seed(3)) * 0.3
        state = {"pass": 0, "rows": slice(None)}

        def replay(self, images):
            step = noise[state["pass"] % 2][state["rows"]]
            state["pass"] += 1
            return step

        monkeypatch.setattr("fcam.cams.gradient.SmoothGradCAMpp._noise", replay)
    layer = resnet18.layer4
    batched = _cams(resnet18, resnet_images, resnet_labels, method, target_layer=layer)
    singles = []
    for i in range(len(resnet_labels)):
        if method == "smoothgradcampp":
            state["rows"] = slice(i, i + 1)
        one = slice(i, i + 1)
        singles.append(_cams(resnet18, resnet_images[one], resnet_labels[one], method, target_layer=layer))
    torch.testing.assert_close(batched, torch.cat(singles), atol=1e-5, rtol=0)


def _hook_counts(model):
    return {name: (len(m._forward_hooks), len(m._forward_pre_hooks)) for name, m in model.named_modules()}


@pytest.mark.parametrize("method", CAM_METHODS)
def test_model_state_is_restored_and_no_grad_leaks(tiny_net, tiny_images, method):
    tiny_net.train()
    tiny_net.body[1].eval()  # a mixed state, restored module by module
    tiny_net.body[0].weight.requires_grad_(False)
    modes = {name: m.training for name, m in tiny_net.named_modules()}
    flags = {name: p.requires_grad for name, p in tiny_net.named_parameters()}
    hooks = _hook_counts(tiny_net)

    _cams(tiny_net, tiny_images, torch.tensor([0, 1, 2, 3]), method)

    assert {name: m.training for name, m in tiny_net.named_modules()} == modes
    assert {name: p.requires_grad for name, p in tiny_net.named_parameters()} == flags
    assert _hook_counts(tiny_net) == hooks
    assert all(p.grad is None for p in tiny_net.parameters())


def test_state_is_restored_after_an_error(tiny_net, tiny_images):
    tiny_net.train()
    hooks = len(tiny_net.target_layer._forward_hooks)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\): images \[1\] have labels \[9\]"):
        compute_cams(tiny_net, tiny_images, torch.tensor([0, 9, 2, 3]), "gradcam")
    assert all(m.training for m in tiny_net.modules())
    assert all(p.requires_grad for p in tiny_net.parameters())
    assert len(tiny_net.target_layer._forward_hooks) == hooks


def test_runs_in_eval_mode(tiny_net, tiny_images):
    """BatchNorm on running statistics and Dropout off, whatever mode the model is in."""
    labels = torch.tensor([0, 1, 2, 3])
    in_eval = compute_cams(tiny_net.eval(), tiny_images, labels, "gradcampp")
    in_train = compute_cams(tiny_net.train(), tiny_images, labels, "gradcampp")
    assert torch.equal(in_eval, in_train)


@pytest.mark.parametrize("method", CAM_METHODS)
@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_works_inside_no_grad_contexts(tiny_net, tiny_images, method, context):
    labels = torch.tensor([0, 1, 2, 3])
    expected = _cams(tiny_net, tiny_images, labels, method)
    with context():
        images = tiny_images.clone()  # an inference tensor under inference_mode
        inside = _cams(tiny_net, images, labels, method)
    assert torch.equal(inside, expected)


@pytest.mark.parametrize(("method", "forwards", "backwards"), [
    ("cam", 1, 0), ("gradcam", 1, 1), ("gradcampp", 1, 1), ("xgradcam", 1, 1), ("layercam", 1, 1),
    ("smoothgradcampp", 1 + SMOOTH["smooth_samples"], SMOOTH["smooth_samples"]),
])
def test_one_forward_and_one_backward_per_batch(
    tiny_net, tiny_images, monkeypatch, method, forwards, backwards
):
    calls = {"forward": 0, "grad": 0}
    real_grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls["grad"] += 1
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    def count_forward(module, inputs):
        calls["forward"] += 1

    handle = tiny_net.register_forward_pre_hook(count_forward)
    try:
        _cams(tiny_net, tiny_images, torch.tensor([0, 1, 2, 3]), method)
    finally:
        handle.remove()
    assert calls == {"forward": forwards, "grad": backwards}


def test_target_layer_defaults_to_model_attribute(tiny_net, tiny_images):
    labels = torch.tensor([4, 3, 2, 1])
    assert torch.equal(
        compute_cams(tiny_net, tiny_images, labels, "layercam"),
        compute_cams(tiny_net, tiny_images, labels, "layercam", target_layer=tiny_net.body[-1]),
    )


def test_captured_activation_is_safe_from_inplace_ops_downstream(tiny_net, tiny_images):
    """Target = the conv whose output the next ReLU(inplace=True) overwrites; the map must use the
    conv output (negative values included), not the rectified one."""
    tiny_net.body[-1] = nn.ReLU(inplace=True)
    conv = tiny_net.body[-2]
    labels = torch.tensor([0, 1, 2, 3])
    cams = compute_cams(tiny_net, tiny_images, labels, "cam", target_layer=conv, reference=True)
    with torch.no_grad():
        activation = conv(tiny_net.body[:-2].eval()(tiny_images))
        maps = (tiny_net.fc.weight[labels][:, :, None, None] * activation).sum(dim=1)
    assert activation.min() < 0
    torch.testing.assert_close(cams, minmax_normalize(maps).float(), atol=1e-6, rtol=0)


def test_empty_batch(tiny_net):
    images = torch.zeros(0, 3, 8, 8, dtype=torch.float64)
    cams = compute_cams(tiny_net, images, torch.zeros(0, dtype=torch.int64), "gradcam")
    assert cams.shape == (0, 8, 8)


def test_non_finite_maps_are_reported(tiny_net, tiny_images):
    tiny_images[2, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite map for images \[2\]"):
        compute_cams(tiny_net, tiny_images, torch.tensor([0, 1, 2, 3]), "gradcam")


class _NoTarget(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


class _Twice(_NoTarget):
    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)) + self.conv(x).mean(dim=(2, 3)))


class _Ignores(_NoTarget):
    def forward(self, x):
        self.conv(x)
        return self.head(x.mean(dim=(2, 3)).repeat(1, 2)[:, :4])


def test_bad_arguments(tiny_net, tiny_images):
    labels = torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"unknown CAM method 'scorecam'; expected one of cam, gradcam, "):
        compute_cams(tiny_net, tiny_images, labels, "scorecam")
    with pytest.raises(ValueError, match="_NoTarget has no `target_layer` attribute"):
        compute_cams(_NoTarget(), tiny_images.float(), labels, "cam")
    with pytest.raises(ValueError, match="is not a submodule of TinyGapNet"):
        compute_cams(tiny_net, tiny_images, labels, "cam", target_layer=nn.ReLU())
    with pytest.raises(TypeError, match=r"target_layer must be a torch\.nn\.Module"):
        GradCAM(tiny_net, target_layer="body.5")
    with pytest.raises(TypeError, match="images must be a floating-point tensor"):
        compute_cams(tiny_net, tiny_images.long(), labels, "cam")
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\), got \(3, 8, 8\)"):
        compute_cams(tiny_net, tiny_images[0], labels, "cam")
    with pytest.raises(TypeError, match=r"labels must be an integer tensor, got .* torch\.float32"):
        compute_cams(tiny_net, tiny_images, labels.float(), "cam")
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\) = \(4,\), got \(3,\)"):
        compute_cams(tiny_net, tiny_images, labels[:3], "cam")
    with pytest.raises(ValueError, match="smooth_samples must be an integer >= 1, got 0"):
        compute_cams(tiny_net, tiny_images, labels, "smoothgradcampp", smooth_samples=0)
    with pytest.raises(ValueError, match=r"smooth_std must be a finite number >= 0, got -0\.1"):
        compute_cams(tiny_net, tiny_images, labels, "smoothgradcampp", smooth_std=-0.1)


class _Mismatch(nn.Module):
    """The linear head reads conv2 (6 channels), so conv1 (4 channels) cannot be CAM's target."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 6, 1)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.conv2(self.conv1(x)).mean(dim=(2, 3)))


class _ConvHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def test_models_that_do_not_fit(tiny_net, tiny_images):
    images, labels = tiny_images.float(), torch.tensor([0, 1, 0, 1])
    model = _Twice()
    with pytest.raises(ValueError, match=r"target layer Conv2d ran 2 times in one forward pass"):
        compute_cams(model, images, labels, "gradcam", target_layer=model.conv)
    tiny_net.unused = nn.ReLU()
    with pytest.raises(ValueError, match=r"target layer ReLU ran 0 times"):
        compute_cams(tiny_net, tiny_images, labels, "gradcam", target_layer=tiny_net.unused)
    model = _NoTarget()
    with pytest.raises(ValueError, match=r"target layer Linear must output \(B, C, h, w\), got \(4, 2\)"):
        compute_cams(model, images, labels, "gradcam", target_layer=model.head)
    model = _Ignores()
    with pytest.raises(ValueError, match="the logits do not depend on the output of target layer Conv2d"):
        compute_cams(model, images, labels, "gradcam", target_layer=model.conv)
    model = _Mismatch()
    with pytest.raises(ValueError, match="the head has in_features=6 but the target layer outputs 4 channel"):
        compute_cams(model, images, labels, "cam", target_layer=model.conv1)
    model = _ConvHead()
    with pytest.raises(ValueError, match=r"_ConvHead has no nn\.Linear"):
        compute_cams(model, images, labels, "cam", target_layer=model.conv)
    assert compute_cams(model, images, labels, "gradcam", target_layer=model.conv).shape == (4, 6, 6)


def test_cam_head_is_fc_else_the_last_linear():
    """``model.fc`` when it is a Linear; otherwise the last Linear (here ``head``, not ``proj``)."""
    model = _Mismatch()
    model.proj = nn.Linear(6, 6)  # registered after ``head``: it is "last" and would be picked
    model.fc = model.head
    assert linear_head(model) is model.head
    del model.fc
    assert linear_head(model) is model.proj


def test_base_class_needs_weights(tiny_net, tiny_images):
    with pytest.raises(NotImplementedError, match="BaseCAM must implement _weights"):
        BaseCAM(tiny_net)(tiny_images, torch.tensor([0, 1, 2, 3]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", CAM_METHODS)
def test_cuda_matches_cpu(tiny_net, tiny_images, method):
    """Same maps on the GPU; Smooth-Grad-CAM++ draws its noise on the (CPU) generator's device."""
    labels = torch.tensor([0, 1, 2, 3])
    on_cpu = _cams(tiny_net, tiny_images, labels, method)
    on_gpu = _cams(tiny_net.cuda(), tiny_images.cuda(), labels.cuda(), method)
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-5, rtol=0)
