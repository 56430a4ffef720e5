"""Inputs for the loss tests: small natural images, smooth probability maps, a brute-force CRF filter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

#: Natural images bundled with scikit-image, not those the CRF constants were fitted on.
HELD_OUT_IMAGES = ("stereo_motorcycle", "retina", "immunohistochemistry", "hubble_deep_field")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run each test on one thread: the tensors are tiny, so threads only add synchronisation
    (and, on a busy 2-core machine, waiting for the other core); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def natural_rgb() -> list[Tensor]:
    """Four natural RGB images, (3, h, w) float64 in [0, 255], as bundled with scikit-image."""
    data = pytest.importorskip("skimage.data")
    images = []
    for name in HELD_OUT_IMAGES:
        array = getattr(data, name)()
        array = array[0] if isinstance(array, tuple) else array  # stereo pairs
        images.append(torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).to(torch.float64))
    return images


@pytest.fixture(scope="session")
def natural_batch(natural_rgb: list[Tensor]) -> Callable[[int, int], Tensor]:
    """``make(h, w)``: the four images area-resized to (4, 3, h, w) float64 in [0, 255]."""

    def make(height: int, width: int) -> Tensor:
        return torch.cat([F.interpolate(img[None], size=(height, width), mode="area") for img in natural_rgb])

    return make


def _smooth_probs(n_batch: int, height: int, width: int, *, classes: int = 2, seed: int = 0) -> Tensor:
    """(B, K, H, W) float64 softmax maps that vary smoothly, like a decoder's output."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n_batch, classes, 5, 5, generator=gen, dtype=torch.float64) * 2.0
    logits = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return torch.softmax(logits, dim=1)


def _dense_kernel(image: Tensor, sigma_rgb: float, sigma_xy: float) -> Tensor:
    """The exact (N, N) float64 matrix W_ij = exp(-|p_i-p_j|^2/(2 s_xy^2) - |I_i-I_j|^2/(2 s_rgb^2))."""
    _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    pos = torch.stack([xs, ys], dim=-1).reshape(-1, 2)
    rgb = image.to(torch.float64).reshape(3, -1).T
    return torch.exp(
        -(torch.cdist(pos, pos) ** 2) / (2 * sigma_xy**2) - torch.cdist(rgb, rgb) ** 2 / (2 * sigma_rgb**2)
    )


def _brute_filter(images: Tensor, values: Tensor, sigma_rgb: float, sigma_xy: float) -> Tensor:
    """``W values`` per image with the explicit kernel: (B, 3, H, W), (B, K, H, W) -> (B, K, H, W)."""
    n_batch, n_chan, height, width = values.shape
    out = [
        (_dense_kernel(images[b], sigma_rgb, sigma_xy) @ values[b].to(torch.float64).reshape(n_chan, -1).T).T
        for b in range(n_batch)
    ]
    return torch.stack(out).reshape(n_batch, n_chan, height, width)


def _brute_crf_loss(images: Tensor, probs: Tensor, sigma_rgb: float, sigma_xy: float) -> Tensor:
    """-(1/B) sum_b sum_k S' W S with the explicit kernel, differentiable by autograd."""
    n_batch, n_chan = probs.shape[:2]
    total = probs.new_zeros(())
    for b in range(n_batch):
        kernel = _dense_kernel(images[b], sigma_rgb, sigma_xy).to(probs.dtype)
        flat = probs[b].reshape(n_chan, -1)
        total = total - (flat @ kernel * flat).sum()
    return total / n_batch


@pytest.fixture(scope="session")
def smooth_probs() -> Callable[..., Tensor]:
    """``make(B, H, W, classes=2, seed=0)``: smooth (B, K, H, W) float64 softmax maps."""
    return _smooth_probs


@pytest.fixture(scope="session")
def exact_crf() -> SimpleNamespace:
    """Brute-force references: ``.kernel(image, s_rgb, s_xy)``, ``.filter(images, values, s_rgb,
    s_xy)`` and ``.loss(images, probs, s_rgb, s_xy)`` (differentiable)."""
    return SimpleNamespace(kernel=_dense_kernel, filter=_brute_filter, loss=_brute_crf_loss)
