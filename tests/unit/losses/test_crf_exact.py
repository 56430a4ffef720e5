"""The exact (dense N x N) CRF filter of small images: equal to the explicit kernel to float32
rounding, chosen by ``kernel="auto"`` up to EXACT_MAX_PIXELS pixels, same loss and gradient
conventions as the lattice path."""

from __future__ import annotations

import pytest
import torch

import fcam.losses.crf as crf_module
from fcam.losses import DenseCRFLoss, bilateral_filter, dense_crf_loss

RTOL = 1e-9  # float64 inputs are filtered in float64
RTOL_FLOAT32 = 5e-4  # float32 rounding of |f_i|^2 - 2 f_i.f_j + |f_j|^2 (features centred first)


@pytest.mark.parametrize("size", [(16, 16), (24, 20), (32, 32)])
@pytest.mark.parametrize(("sigma_rgb", "sigma_xy"), [(15.0, 15.0), (10.0, 5.0), (60.0, 2.0), (5.0, 100.0)])
def test_exact_filter_equals_the_dense_kernel(natural_batch, smooth_probs, exact_crf, size, sigma_rgb,
                                              sigma_xy):
    height, width = size
    images = natural_batch(height, width)
    probs = smooth_probs(4, height, width)
    expected = exact_crf.filter(images, probs, sigma_rgb, sigma_xy)
    got = bilateral_filter(images, probs, sigma_rgb=sigma_rgb, sigma_xy=sigma_xy, kernel="exact")
    assert got.shape == probs.shape
    assert got.dtype == probs.dtype
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=0.0)
    loss = dense_crf_loss(images, probs, sigma_rgb=sigma_rgb, sigma_xy=sigma_xy, kernel="exact")
    assert abs(loss / exact_crf.loss(images, probs, sigma_rgb, sigma_xy) - 1) < RTOL


@pytest.mark.parametrize(("sigma_rgb", "sigma_xy"), [(15.0, 15.0), (5.0, 100.0)])
def test_exact_filter_in_float32(natural_batch, smooth_probs, exact_crf, sigma_rgb, sigma_xy):
    images = natural_batch(32, 32)
    probs = smooth_probs(4, 32, 32)
    expected = exact_crf.filter(images, probs, sigma_rgb, sigma_xy)
    got = bilateral_filter(images.float(), probs.float(), sigma_rgb=sigma_rgb, sigma_xy=sigma_xy,
                           kernel="exact")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=RTOL_FLOAT32, atol=0.0)


def test_exact_filter_on_saturated_colours_keeps_tiny_weights_normal():
    # Far-apart colours give exponents far below -80 (denormal range): clamped, not NaN, not slow.
    images = torch.zeros(1, 3, 8, 8)
    images[:, :, :, 4:] = 255.0
    probs = torch.full((1, 2, 8, 8), 0.5)
    got = bilateral_filter(images, probs, sigma_rgb=1.0, sigma_xy=1.0, kernel="exact")
    assert torch.isfinite(got).all()
    # The two halves do not see each other: each pixel sums the spatial kernel of its own half.
    left = bilateral_filter(images[..., :4], probs[..., :4], sigma_rgb=1.0, sigma_xy=1.0, kernel="exact")
    torch.testing.assert_close(got[..., :4], left, rtol=1e-6, atol=1e-30)


def test_auto_is_exact_up_to_the_threshold_and_lattice_above(natural_batch, smooth_probs, monkeypatch):
    images = natural_batch(16, 16)
    probs = smooth_probs(4, 16, 16)
    kwargs = {"sigma_rgb": 15.0, "sigma_xy": 5.0}
    exact = bilateral_filter(images, probs, kernel="exact", **kwargs)
    lattice = bilateral_filter(images, probs, kernel="lattice", **kwargs)
    assert not torch.allclose(exact, lattice, rtol=1e-3)
    assert crf_module.EXACT_MAX_PIXELS >= 32 * 32  # the default preset's crops are filtered exactly
    assert torch.equal(bilateral_filter(images, probs, **kwargs), exact)
    monkeypatch.setattr(crf_module, "EXACT_MAX_PIXELS", 16 * 16 - 1)
    assert torch.equal(bilateral_filter(images, probs, **kwargs), lattice)


def test_exact_gradient_matches_autograd_of_the_dense_loss(natural_batch, smooth_probs, exact_crf):
    images = natural_batch(12, 10)
    probs = smooth_probs(4, 12, 10).requires_grad_(True)
    loss = dense_crf_loss(images, probs, sigma_rgb=20.0, sigma_xy=4.0, kernel="exact")
    (got,) = torch.autograd.grad(loss, probs)
    leaf = probs.detach().requires_grad_(True)
    (expected,) = torch.autograd.grad(exact_crf.loss(images, leaf, 20.0, 4.0), leaf)
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=1e-12)


def test_module_passes_the_kernel(natural_batch, smooth_probs):
    images = natural_batch(16, 16)
    probs = smooth_probs(4, 16, 16)
    for kernel in ("exact", "lattice"):
        module = DenseCRFLoss(sigma_rgb=15.0, sigma_xy=5.0, kernel=kernel)
        assert f"kernel={kernel}" in repr(module)
        assert torch.equal(module(images, probs), dense_crf_loss(images, probs, sigma_xy=5.0, kernel=kernel))


@pytest.mark.parametrize("call", [
    lambda i, p: bilateral_filter(i, p, sigma_rgb=15.0, sigma_xy=5.0, kernel="brute"),
    lambda i, p: dense_crf_loss(i, p, kernel="brute"),
    lambda i, p: DenseCRFLoss(kernel="brute"),
])
def test_unknown_kernel_is_rejected(call):
    with pytest.raises(ValueError, match="kernel must be one of"):
        call(torch.zeros(1, 3, 4, 4), torch.full((1, 2, 4, 4), 0.5))
