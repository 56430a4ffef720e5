"""Parity with the reference libraries, to 1e-5 after min-max normalisation.

pytorch-grad-cam (``pytorch_grad_cam``) applies a ReLU, then ``(m - min) / (max + 1e-7)`` and
resizes the map to the input size with ``cv2.resize``. We compare at the target layer's
resolution: on :class:`TinyGapNet` (stride 1) the input and the feature map have the same size,
so its public ``__call__`` runs untouched (``cv2.resize`` to the same size is the identity); on
ResNet18 we replace only the method that gives the resize target (``get_target_width_height``)
by the feature map's size. Its output is then min-max normalised again, which removes the 1e-7
(its map is an affine image of ours). The heads have |w| bounded away from 0 (``large_head``)
so that its eps in Grad-CAM++ (1e-6) and XGrad-CAM (1e-7) denominators are negligible.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torchcam import methods as torchcam

from fcam.cams import compute_cams, minmax_normalize

PGC_CLASSES = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "xgradcam": XGradCAM, "layercam": LayerCAM}
ATOL = 1e-5


def _pytorch_grad_cam(method, model, layer, images, labels, feature_size=None):
    """pytorch-grad-cam's map, min-max normalised again: (B, h, w) float64."""
    with PGC_CLASSES[method](model=model, target_layers=[layer]) as extractor:
        if feature_size is not None:
            extractor.get_target_width_height = lambda _input: feature_size  # (width, height)
        maps = extractor(input_tensor=images, targets=[ClassifierOutputTarget(int(y)) for y in labels])
    return minmax_normalize(torch.from_numpy(np.asarray(maps, dtype=np.float64)))


@pytest.mark.parametrize("method", sorted(PGC_CLASSES))
def test_matches_pytorch_grad_cam_on_resnet18(large_head, resnet18, resnet_images, resnet_labels, method):
    large_head(resnet18.fc, 10.0, 20.0, seed=3)  # |dY/dA| = |w| / 9 >= 1.1
    ours = compute_cams(resnet18, resnet_images, resnet_labels, method, target_layer=resnet18.layer4)
    assert ours.shape == (3, 3, 3)
    theirs = _pytorch_grad_cam(method, resnet18, resnet18.layer4, resnet_images, resnet_labels, (3, 3))
    assert theirs.max() == 1  # non-degenerate maps
    torch.testing.assert_close(ours.double(), theirs, atol=ATOL, rtol=0)


@pytest.mark.parametrize("method", sorted(PGC_CLASSES))
def test_matches_pytorch_grad_cam_on_stride1_net(large_head, tiny_net, tiny_images, method):
    large_head(tiny_net.fc, 100.0, 200.0, seed=4)  # |dY/dA| = |w| / 64 >= 1.5
    labels = torch.tensor([0, 4, 2, 2])
    ours = compute_cams(tiny_net, tiny_images, labels, method)
    theirs = _pytorch_grad_cam(method, tiny_net, tiny_net.target_layer, tiny_images, labels)
    assert ours.shape == theirs.shape == (4, 8, 8)
    torch.testing.assert_close(ours.double(), theirs, atol=ATOL, rtol=0)


def test_pytorch_grad_cam_eps_matters_with_small_gradients(tiny_net, tiny_images):
    """Why the heads above are large: with the default init |g| ~ 1e-3, g^2 << pytorch-grad-cam's
    eps = 1e-6, which then dominates its Grad-CAM++ alpha; our textbook alpha has no eps."""
    labels = torch.tensor([0, 4, 2, 2])
    ours = compute_cams(tiny_net, tiny_images, labels, "gradcampp")
    theirs = _pytorch_grad_cam("gradcampp", tiny_net, tiny_net.target_layer, tiny_images, labels)
    assert (ours.double() - theirs).abs().max() > 1e-3


def test_cam_equals_gradcam_for_gap_linear_head(resnet18, resnet_images, resnet_labels):
    """For logits = w @ mean_ij(A) + b, dY/dA[b, c, i, j] = w[y_b, c] / (h w) at every position, so
    Grad-CAM's weights are w / (h w): the same map as CAM after min-max (both with ReLU)."""
    layer = resnet18.layer4
    leaf = []

    def as_leaf(module, inputs, output):
        leaf.append(output.detach().requires_grad_())
        return leaf[-1]

    handle = layer.register_forward_hook(as_leaf)
    try:
        logits = resnet18(resnet_images)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(logits.gather(1, resnet_labels[:, None]).sum(), leaf[0])
    expected = (resnet18.fc.weight[resnet_labels] / 9)[:, :, None, None].expand_as(grad)
    torch.testing.assert_close(grad, expected.detach(), atol=1e-7, rtol=1e-6)

    cam = compute_cams(resnet18, resnet_images, resnet_labels, "cam", target_layer=layer)
    gradcam = compute_cams(resnet18, resnet_images, resnet_labels, "gradcam", target_layer=layer)
    torch.testing.assert_close(cam, gradcam, atol=1e-6, rtol=0)
    # CAM* (no ReLU) differs wherever the class evidence is negative somewhere in the map.
    cam_star = compute_cams(resnet18, resnet_images, resnet_labels, "cam", target_layer=layer, reference=True)
    assert (cam_star - cam).abs().max() > 1e-2


TORCHCAM_CLASSES = {
    "cam": torchcam.CAM, "gradcam": torchcam.GradCAM, "gradcampp": torchcam.GradCAMpp,
    "xgradcam": torchcam.XGradCAM, "layercam": torchcam.LayerCAM,
}


@pytest.mark.parametrize("method", sorted(TORCHCAM_CLASSES))
def test_reference_matches_torchcam(large_head, resnet18, resnet_images, resnet_labels, method):
    """torch-cam 0.5 keeps the quirks the reference code inherited from it: CAM without ReLU and
    Grad-CAM++ whose alpha division acts on a copy (weights sum ReLU(g)^3); for the other three
    methods ``reference=True`` is the textbook formula."""
    large_head(resnet18.fc, 10.0, 20.0, seed=8)
    kwargs = {"fc_layer": resnet18.fc} if method == "cam" else {}
    with TORCHCAM_CLASSES[method](resnet18, resnet18.layer4, **kwargs) as extractor:
        scores = resnet18(resnet_images)
        maps = extractor(class_idx=resnet_labels.tolist(), scores=None if method == "cam" else scores)[0]
    theirs = minmax_normalize(maps.double())
    ours = compute_cams(resnet18, resnet_images, resnet_labels, method, target_layer=resnet18.layer4,
                        reference=True)
    assert theirs.max() == 1
    torch.testing.assert_close(ours.double(), theirs, atol=ATOL, rtol=0)


class _ReplayNormal:
    """Stands in for torch-cam's ``Normal(0, std)``: hands out pre-drawn noise tensors in order."""

    def __init__(self, noises):
        self._noises = iter(noises)

    def sample(self, size):
        noise = next(self._noises)
        assert tuple(size) == tuple(noise.shape)
        return noise


def test_smoothgradcampp_reference_matches_torchcam(large_head, resnet18, resnet_images, resnet_labels):
    """torch-cam 0.5's SmoothGradCAMpp is the reference's (a torch-cam fork): with the same noise it
    equals ``reference=True``. Its alpha has eps = 1e-8, negligible with the large head."""
    large_head(resnet18.fc, 10.0, 20.0, seed=6)
    samples, std, seed = 3, 0.3, 7
    gen = torch.Generator().manual_seed(seed)
    noises = [torch.randn(resnet_images.shape, generator=gen) * std for _ in range(samples)]

    extractor = torchcam.SmoothGradCAMpp(resnet18, resnet18.layer4, num_samples=samples, std=std)
    try:
        extractor._distrib = _ReplayNormal(noises)
        resnet18(resnet_images)  # torch-cam hooks the clean input and activation here
        theirs = minmax_normalize(extractor(class_idx=resnet_labels.tolist())[0].double())
    finally:
        extractor.remove_hooks()

    ours = compute_cams(resnet18, resnet_images, resnet_labels, "smoothgradcampp",
                        target_layer=resnet18.layer4, reference=True, smooth_samples=samples, smooth_std=std,
                        generator=torch.Generator().manual_seed(seed))
    assert theirs.max() == 1
    torch.testing.assert_close(ours.double(), theirs, atol=ATOL, rtol=0)
    # The textbook variant (clean activation, averaged gradient) is a different map.
    textbook = compute_cams(resnet18, resnet_images, resnet_labels, "smoothgradcampp",
                            target_layer=resnet18.layer4, smooth_samples=samples, smooth_std=std,
                            generator=torch.Generator().manual_seed(seed))
    assert (textbook - ours).abs().max() > 1e-3
