"""Every method's formula against values worked out by hand on a 2 x 2 map.

The model is :class:`SquareHead`: A = x (C = 2, 2 x 2), logits = w @ mean_ij(A^2) with
w = [[1, -1], [1, 0.5]], so g = dY/dA = 2 w[y, c] A_c / 4 = w[y, c] A_c / 2. Both images hold
A0 = [[2, 1], [0, 1]], A1 = [[0, 0], [2, 1]] (sum A0 = 4, sum A1 = 3); image 0 has label 0,
image 1 label 1:
    image 0: g0 = [[1, .5], [0, .5]], g1 = -A1 / 2 = [[0, 0], [-1, -.5]]
    image 1: g0 = [[1, .5], [0, .5]], g1 = A1 / 4 = [[0, 0], [.5, .25]]
"""

from __future__ import annotations

import pytest
import torch

from fcam.cams import SmoothGradCAMpp, compute_cams

LABELS = torch.tensor([0, 1])

# method -> (textbook, reference) expected maps of the two images; derivations inline.
EXPECTED = {
    # M = sum_c w[y, c] A_c. Image 0: A0 - A1 = [[2, 1], [-2, 0]]; ReLU -> [[2, 1], [0, 0]] / 2;
    # CAM* (no ReLU): (M + 2) / 4. Image 1: A0 + A1 / 2 = [[2, 1], [1, 1.5]] -> (M - 1) / 1.
    "cam": (
        [[[1, 0.5], [0, 0]], [[1, 0], [0, 0.5]]],
        [[[1, 0.75], [0, 0.5]], [[1, 0], [0, 0.5]]],
    ),
    # W = mean g. Image 0: W = (0.5, -1.5 / 4) -> M = [[1, .5], [-.75, .125]] -> ReLU, / 1.
    # Image 1: W = (0.5, 0.75 / 4 = 0.1875) -> M = [[1, .5], [.375, .6875]] -> (M - .375) / .625.
    "gradcam": (
        [[[1, 0.5], [0, 0.125]], [[1, 0.2], [0, 0.5]]],
        [[[1, 0.5], [0, 0.125]], [[1, 0.2], [0, 0.5]]],
    ),
    # alpha = 1 / (2 + S g) where g != 0. Channel 0: 1 / (2 + 4 g) = [[1/6, 1/4], [-, 1/4]],
    # W0 = 1/6 + 1/8 + 1/8 = 5/12. Image 0: ReLU(g1) = 0, W1 = 0 -> M = 5/12 A0.
    # Image 1: alpha1 = 1 / (2 + 3 g) = 2/7 (g = .5), 4/11 (g = .25); W1 = 1/7 + 1/11 = 18/77;
    # M = [[10/12, 5/12], [36/77, 5/12 + 18/77]] -> (M - 5/12) / (5/12).
    # Reference: W = sum ReLU(g)^3: W0 = 1 + 1/8 + 1/8 = 1.25; image 0 W1 = 0 -> same as above;
    # image 1 W1 = 1/8 + 1/64 = 9/64: M = [[2.5, 1.25], [9/32, 1.25 + 9/64]] -> (M - 9/32) / (71/32).
    "gradcampp": (
        [[[1, 0.5], [0, 0.5]], [[1, 0], [47 / 385, 216 / 385]]],
        [[[1, 0.5], [0, 0.5]], [[1, 31 / 71], [0, 0.5]]],
    ),
    # W = sum(g A) / sum(A). Image 0: W = (3 / 4, -2.5 / 3): M = [[1.5, .75], [-5/3, -1/12]] -> ReLU, / 1.5.
    # Image 1: W = (3 / 4, 1.25 / 3): M = [[1.5, .75], [5/6, 7/6]] -> (M - .75) / .75.
    "xgradcam": (
        [[[1, 0.5], [0, 0]], [[1, 0], [1 / 9, 5 / 9]]],
        [[[1, 0.5], [0, 0]], [[1, 0], [1 / 9, 5 / 9]]],
    ),
    # M = sum_c ReLU(g_c) A_c. Image 0: A0^2 / 2 = [[2, .5], [0, .5]] -> / 2.
    # Image 1: + A1^2 / 4 -> [[2, .5], [1, .75]] -> (M - .5) / 1.5.
    "layercam": (
        [[[1, 0.25], [0, 0.25]], [[1, 0], [1 / 3, 1 / 6]]],
        [[[1, 0.25], [0, 0.25]], [[1, 0], [1 / 3, 1 / 6]]],
    ),
}


@pytest.mark.parametrize("reference", [False, True], ids=["textbook", "reference"])
@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_hand_computed_maps(square_head, square_images, method, reference):
    cams = compute_cams(square_head, square_images, LABELS, method, reference=reference)
    expected = torch.tensor(EXPECTED[method][int(reference)], dtype=torch.float32)
    torch.testing.assert_close(cams, expected, atol=1e-6, rtol=0)


def test_smoothgradcampp_without_noise_is_textbook_gradcampp(square_head, square_images):
    # std = 0: every pass sees the clean input, so D_p = g^p and the variant reduces to the
    # paper's Grad-CAM++ (not to the reference's sum ReLU(g)^3).
    cams = compute_cams(
        square_head, square_images, LABELS, "smoothgradcampp", smooth_samples=3, smooth_std=0.0
    )
    expected = torch.tensor(EXPECTED["gradcampp"][0], dtype=torch.float32)
    torch.testing.assert_close(cams, expected, atol=1e-6, rtol=0)


# The authors' Smooth-Grad-CAM++ (fcam-wsol dlib/cams/gradcam.py) without noise: alpha = g^2 /
# (2 g^2 + T_c) with T_c = sum_ab g^3 A (the spatial sum of the product, not sum(A) g_ij^3).
# Channel 0 (both images, g0 = A0 / 2 = [[1, .5], [0, .5]]): T0 = 1*2 + 1/8 + 1/8 = 9/4;
# alpha = 1/(2 + 9/4) = 4/17 at g = 1, (1/4)/(1/2 + 9/4) = 1/11 at g = 1/2, 0 at g = 0;
# W0 = 4/17 + 2 * (1/11) * (1/2) = 61/187. Image 0: ReLU(g1) = 0, W1 = 0 -> M = W0 A0.
# Image 1: g1 = A1 / 4 = [[0, 0], [1/2, 1/4]], T1 = (1/8) 2 + (1/64) 1 = 17/64;
# alpha = (1/4)/(1/2 + 17/64) = 16/49, (1/16)/(1/8 + 17/64) = 4/25; W1 = 8/49 + 1/25 = 249/1225.
# M = W0 A0 + W1 A1 = [[2 W0, W0], [2 W1, W0 + W1]]; min W0, max 2 W0 -> [[1, 0], [2r - 1, r]],
# r = W1 / W0 = (249 * 187) / (1225 * 61) = 46563 / 74725.
_R = 46563 / 74725
REFERENCE_SMOOTH_NO_NOISE = [[[1, 0.5], [0, 0.5]], [[1, 0], [2 * _R - 1, _R]]]


def test_smoothgradcampp_reference_without_noise_by_hand(square_head, square_images):
    cams = compute_cams(square_head, square_images, LABELS, "smoothgradcampp", reference=True,
                        smooth_samples=3, smooth_std=0.0)
    expected = torch.tensor(REFERENCE_SMOOTH_NO_NOISE, dtype=torch.float32)
    torch.testing.assert_close(cams, expected, atol=1e-6, rtol=0)
    # ... which is not the paper's Grad-CAM++ (the textbook variant's limit above).
    assert (cams - torch.tensor(EXPECTED["gradcampp"][0])).abs().max() > 0.1


def _minmax(maps):
    low = maps.amin(dim=(1, 2), keepdim=True)
    return (maps - low) / (maps.amax(dim=(1, 2), keepdim=True) - low)


@pytest.mark.parametrize("reference", [False, True], ids=["textbook", "reference"])
def test_smoothgradcampp_closed_form_with_noise(square_head, square_images, monkeypatch, reference):
    """With A = x the noisy activations and gradients have a closed form: A_m = x + e_m, g_m = w A_m / 2."""
    gen = torch.Generator().manual_seed(5)
    noises = [0.4 * torch.randn(square_images.shape, generator=gen, dtype=torch.float64) for _ in range(3)]
    replay = iter(noises)
    monkeypatch.setattr(SmoothGradCAMpp, "_noise", lambda self, images: next(replay))

    cams = compute_cams(square_head, square_images, LABELS, "smoothgradcampp", reference=reference,
                        smooth_samples=3)

    w = square_head.fc.weight.detach()[LABELS][:, :, None, None]
    grads = [w * (square_images + e) / 2 for e in noises]
    d1, d2, d3 = (sum(g**p for g in grads) / 3 for p in (1, 2, 3))
    if reference:
        # The authors': alpha's sum is sum_ab D3 A (clean A); last pass's gradient and activation.
        alpha = d2 / (2 * d2 + (d3 * square_images).sum(dim=(2, 3), keepdim=True))
        weights = (alpha * grads[-1].clamp(min=0)).sum(dim=(2, 3), keepdim=True)
        activation = square_images + noises[-1]
    else:
        alpha = d2 / (2 * d2 + square_images.sum(dim=(2, 3), keepdim=True) * d3)
        weights = (alpha * d1.clamp(min=0)).sum(dim=(2, 3), keepdim=True)
        activation = square_images
    expected = _minmax((weights * activation).sum(dim=1).clamp(min=0)).float()
    torch.testing.assert_close(cams, expected, atol=1e-6, rtol=0)
    # The two variants really differ on this input (otherwise the test above proves little).
    replay = iter(noises)
    other = compute_cams(square_head, square_images, LABELS, "smoothgradcampp", reference=not reference,
                         smooth_samples=3)
    assert (cams - other).abs().max() > 1e-2


def test_smoothgradcampp_noise_comes_from_the_generator(square_head, square_images):
    """The noise of pass m is the m-th randn(images.shape, generator) draw, times std."""
    gen = torch.Generator().manual_seed(11)
    noises = [0.3 * torch.randn(square_images.shape, generator=gen, dtype=torch.float64) for _ in range(2)]
    seen = []
    handle = square_head.features.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].clone()))
    try:
        first = compute_cams(square_head, square_images, LABELS, "smoothgradcampp", smooth_samples=2,
                             smooth_std=0.3, generator=torch.Generator().manual_seed(11))
    finally:
        handle.remove()
    assert len(seen) == 3  # the clean pass, then two noisy ones
    torch.testing.assert_close(seen[0], square_images, atol=0, rtol=0)
    for observed, noise in zip(seen[1:], noises, strict=True):
        torch.testing.assert_close(observed, square_images + noise, atol=1e-15, rtol=0)
    again = compute_cams(square_head, square_images, LABELS, "smoothgradcampp", smooth_samples=2,
                         smooth_std=0.3, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(first, again, atol=0, rtol=0)


@pytest.mark.parametrize("reference", [False, True], ids=["textbook", "reference"])
@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcampp", "smoothgradcampp", "xgradcam", "layercam"])
@pytest.mark.parametrize("fill", [0.0, 3.0], ids=["zeros", "constant"])
def test_constant_activation_gives_zeros(square_head, method, fill, reference):
    # A constant A gives a constant map; an all-zero A makes every Grad-CAM++ / XGrad-CAM
    # denominator 0. Both must give all-zero maps, never NaN.
    images = torch.full((2, 2, 2, 2), fill, dtype=torch.float64)
    cams = compute_cams(square_head, images, LABELS, method, smooth_std=0.0, reference=reference)
    assert torch.equal(cams, torch.zeros(2, 2, 2))
