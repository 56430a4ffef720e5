"""Dense CRF loss: a regulariser that makes the decoder's map follow the image's colour edges.

Tang, Perazzi, Djelouah, Ben Ayed, Schroers & Boykov, "On Regularized Losses for
Weakly-supervised CNN Segmentation", ECCV 2018. For B images of N pixels and the softmax maps
``S^k`` (k = 1..K, a column of N values each):

    R(S) = -(1/B) sum_b sum_k S_b^k' W_b S_b^k
    W_ij = exp(-|p_i - p_j|^2 / (2 sigma_xy^2) - |I_i - I_j|^2 / (2 sigma_rgb^2))

over all pixel pairs (i, j), including i = j (W_ii = 1, as in the reference's permutohedral
filter), with ``p`` the pixel position (x, y) and ``I`` the raw RGB colour in [0, 255]. The
gradient is ``dR/dS_b^k = -(2/B) W_b S_b^k`` (W is symmetric). The paper weights it by
lambda = 2e-9 (docs/method.md §5) on the authors' filter, which is 1.18e-9 on this one (see
below); the weight is applied by the caller.

``W S`` is computed with the permutohedral lattice (:mod:`fcam.losses.permutohedral`) in the 5-D
feature space ``(x / sigma_xy, y / sigma_xy, r / sigma_rgb, g / sigma_rgb, b / sigma_rgb)``,
scaled by ``LATTICE_SCALE`` and multiplied by ``LATTICE_GAIN``. Both constants were fitted by
least squares against the exact (brute-force) ``W S`` on natural images (skimage's astronaut,
coffee, chelsea and rocket at 56 x 56 and 112 x 112, ``sigma_xy`` scaled with the image) so that
fcam's loss approximates the formula above, not the reference's un-normalised filter; the
mass-matching value of the gain, ``(2 pi)^(5/2) / (2^6 v_cell) = 1.754``, is within 3 %.

Accuracy, measured against the brute-force sum on photographs the constants were not fitted
on (stereo_motorcycle, retina, immunohistochemistry, hubble_deep_field; ``benchmarks/crf.py
--accuracy-images 4``): at 224 x 224 with the default sigmas, ``W S`` per pixel has a median
relative error of 3.5 % (99th percentile 22 %) and the loss is within 2 %; on 16 x 16 and
24 x 20 images with sigmas from 2 to 60 (the unit tests) the median is 4-6 %, the 99th
percentile at most 24 % and the loss within 5 %. This is the accuracy of the lattice, whose
piecewise-linear kernel is not exactly Gaussian.

The reference's filter is not calibrated: the F-CAM code's lattice (fcam-wsol
``dlib/crf/crfwrapper/bilateralfilter/permutohedral.cpp``, Krähenbühl's lattice as modified by
L.-C. Chen, called per image and class by ``bilateralfilter.cpp`` and
``dlib/crf/dense_crf_loss.py``) returns about :data:`REFERENCE_LATTICE_FACTOR` = 0.589 times the
exact ``W S``: its splat/blur/slice weights (barycentric, ``[1/2, 1, 1/2]``, barycentric times
``alpha = 1/(1 + 2^-5)``) are not normalised to the Gaussian's mass, and its blur drops the
mass that would pass through lattice points absent from its hash table. So
the paper's lambda = :data:`PAPER_CRF_WEIGHT` = 2e-9, tuned on that filter, is lambda =
:data:`PAPER_CRF_WEIGHT_EXACT` = 2e-9 x 0.589 = 1.18e-9 for fcam's (exact-calibrated) loss.
See :data:`REFERENCE_LATTICE_FACTOR` for how it was measured.

Scale: with ``scale < 1`` the loss is computed on downsampled inputs, as the reference's
``scale_factor`` option: images by nearest neighbour, probabilities bilinearly
(align_corners=False, so the gradient flows back to full resolution), and ``sigma_xy`` multiplied
by ``scale`` so that the spatial kernel covers the same part of the image. The loss is not
rescaled: it shrinks roughly as ``scale^4`` (N^2 pairs), so the weight must be adapted.

Small images: up to :data:`EXACT_MAX_PIXELS` pixels (64 x 64) ``W S`` is computed exactly, as
the dense N x N product, one image (and row block) at a time, instead of with the lattice: at
32 x 32 it is about 20 times faster than the lattice (the lattice's cost is its per-point
bookkeeping, the dense product's N^2 multiply-adds and exponentials are cheap at this size), and
it has no approximation error (float32 rounding only). ``kernel="lattice"`` or ``"exact"``
forces either one; the loss of the paper's 224 px crops always uses the lattice.

The backward pass reuses the ``W S`` of the forward pass (no second filtering, no autograd
through the lattice). Everything stays on the inputs' device; ``torch.unique`` needs the number
of distinct lattice keys, so on CUDA each forward synchronises a few times, but no tensor data
leaves the device.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcam.losses.permutohedral import PermutohedralLattice

__all__ = [
    "EXACT_MAX_PIXELS",
    "LATTICE_GAIN",
    "LATTICE_SCALE",
    "PAPER_CRF_WEIGHT",
    "PAPER_CRF_WEIGHT_EXACT",
    "REFERENCE_LATTICE_FACTOR",
    "DenseCRFLoss",
    "bilateral_filter",
    "dense_crf_loss",
]

#: Features are multiplied by this before the lattice (fitted, see the module docstring).
LATTICE_SCALE = 1.05
#: The lattice output is multiplied by this to approximate the exact Gaussian sum (fitted).
LATTICE_GAIN = 1.71
#: The CRF weight lambda of the paper and of the F-CAM code (``--crf_lambda 2e-09``), i.e. for
#: the authors' un-calibrated lattice filter.
PAPER_CRF_WEIGHT = 2e-9

#: Ratio of the F-CAM code's CRF loss to the exact one, ``S' W_ref S / S' W S`` (also the
#: least-squares scale of its ``W S`` against the exact ``W S``: 0.588 +- 0.025).
#:
#: Measured (not fitted) by building the authors' C++ lattice unchanged (fcam-wsol commit
#: 40b3b42, ``dlib/crf/crfwrapper/bilateralfilter/{permutohedral,bilateralfilter}.cpp``, g++
#: -O2 -fopenmp, SSE path as their ``setup.py`` build; called through a small C shim instead of
#: SWIG, same arguments as ``dense_crf_loss.py``: float32 RGB in [0, 255], sigma_rgb 15,
#: sigma_xy 100) outside the repository and comparing it with the brute-force N x N sum. Data:
#: 8 photographs bundled with scikit-image (astronaut, chelsea, coffee, rocket,
#: stereo_motorcycle, retina, immunohistochemistry, hubble_deep_field), each resized to 256 x 256
#: and cropped to 224 x 224 twice (centre, one random crop), each crop with three 2-class soft
#: segmentations (a smooth blob, the softmax of a blurred Otsu mask of the photo that follows its
#: edges, and a bilinearly upsampled 28 x 28 smooth random field): 48 cases. Result: 0.589 +-
#: 0.023 (mean +- sd over the 48; min 0.539 on rocket, max 0.618 on immunohistochemistry; means
#: per photo 0.544-0.614, sd 0.024). The factor depends on the photo (its colour statistics)
#: far more than on S. On the same cases fcam's loss is 0.992 +- 0.021 times the exact one, and
#: the authors' loss 0.593 +- 0.016 times fcam's.
REFERENCE_LATTICE_FACTOR = 0.589

#: lambda for fcam's loss that gives the paper's CRF strength: PAPER_CRF_WEIGHT x
#: REFERENCE_LATTICE_FACTOR = 1.178e-9 (uncertain by about +-4 %, the photo-to-photo spread).
PAPER_CRF_WEIGHT_EXACT = PAPER_CRF_WEIGHT * REFERENCE_LATTICE_FACTOR

#: Upper bound of raw colour values; images are clamped to [0, RGB_MAX].
RGB_MAX = 255.0

#: ``kernel="auto"`` filters images of at most this many pixels (64 x 64) with the exact dense
#: kernel, larger ones with the lattice (at 32 x 32: ~3 ms against ~60 ms per image, 1 thread).
EXACT_MAX_PIXELS = 4096
#: Rows of W formed at once by the exact filter (a 1024 x N float32 block: 4 MiB at N = 1024).
_EXACT_ROWS = 1024
#: Exponents below this are raised to it before ``exp``: exp(-80) = 1.8e-35 is still a normal
#: float32, while the denormals that exp(-100) would give are ~10x slower to compute; the
#: change is below 1e-34 per pair, against W_ii = 1.
_EXP_FLOOR = -80.0

_KERNELS = ("auto", "lattice", "exact")


def _check(images: Tensor, values: Tensor, sigma_rgb: float, sigma_xy: float) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    if values.ndim != 4 or values.shape[0] != images.shape[0] or values.shape[2:] != images.shape[2:]:
        raise ValueError(
            f"probabilities must be (B, K, H, W) matching images {tuple(images.shape)}, "
            f"got {tuple(values.shape)}"
        )
    if images.device != values.device:
        raise ValueError(f"images on {images.device} but probabilities on {values.device}")
    if not (sigma_rgb > 0 and sigma_xy > 0):
        raise ValueError(f"sigma_rgb and sigma_xy must be > 0, got {sigma_rgb} and {sigma_xy}")


def _exact_filter(features: Tensor, values: Tensor) -> Tensor:
    """``out_i = sum_j exp(-|f_i - f_j|^2 / 2) values_j`` with the explicit kernel.

    Computed in float64 for float64 values, else in float32 (relative error ~1e-5, up to ~1e-4
    with colour sigmas of a few units).

    Args:
        features: (B, N, d) features in standard-deviation units.
        values: (B, N, K).

    Returns:
        (B, N, K), float64 for float64 values, else float32.
    """
    dtype = torch.float64 if values.dtype == torch.float64 else torch.float32
    features, values = features.to(dtype), values.to(dtype)
    out = torch.empty(values.shape, dtype=dtype, device=values.device)
    for b in range(features.shape[0]):
        f = features[b] - features[b].mean(dim=0)  # centred: less cancellation in |f_i|^2 - 2 f_i.f_j
        half = 0.5 * (f * f).sum(dim=1, keepdim=True)  # (N, 1)
        ones = torch.ones_like(half)
        # -|f_i - f_j|^2 / 2 = f_i.f_j - |f_i|^2/2 - |f_j|^2/2 as one product of (N, d + 2) matrices.
        left = torch.cat([f, half, ones], dim=1)
        right = torch.cat([f, -ones, -half], dim=1).T
        for start in range(0, f.shape[0], _EXACT_ROWS):
            block = left[start : start + _EXACT_ROWS] @ right
            block.clamp_(min=_EXP_FLOOR, max=0.0).exp_()
            torch.mm(block, values[b], out=out[b, start : start + _EXACT_ROWS])
    return out


def bilateral_filter(
    images: Tensor, values: Tensor, *, sigma_rgb: float, sigma_xy: float, kernel: str = "auto"
) -> Tensor:
    """``W values`` for every image of a batch (the dense Gaussian filter of the CRF loss).

    Args:
        images: (B, 3, H, W) float, raw RGB in [0, 255] (values outside are clamped).
        values: (B, K, H, W) float, on the device of ``images``.
        sigma_rgb: colour standard deviation (> 0).
        sigma_xy: spatial standard deviation in pixels (> 0).
        kernel: "lattice" (permutohedral approximation), "exact" (the dense N x N kernel, O(N^2)
            time) or "auto": exact up to :data:`EXACT_MAX_PIXELS` pixels, else the lattice.

    Returns:
        (B, K, H, W), dtype of ``values``: ``out_i = sum_j W_ij values_j`` (exact, or the lattice
        approximation, see the module docstring for its accuracy); no gradient.

    Raises:
        ValueError: shapes, devices, sigmas or kernel do not fit.
    """
    _check(images, values, sigma_rgb, sigma_xy)
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(_KERNELS)}, got {kernel!r}")
    n_batch, n_chan, height, width = values.shape
    device = images.device
    exact = kernel == "exact" or (kernel == "auto" and height * width <= EXACT_MAX_PIXELS)
    xy_scale = (1.0 if exact else LATTICE_SCALE) / sigma_xy
    rgb_scale = (1.0 if exact else LATTICE_SCALE) / sigma_rgb
    # The lattice works in float32; the exact filter in float64 for float64 values.
    ftype = torch.float64 if exact and values.dtype == torch.float64 else torch.float32
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=ftype),
        torch.arange(width, device=device, dtype=ftype),
        indexing="ij",
    )
    position = torch.stack([xs, ys]).expand(n_batch, 2, height, width) * xy_scale
    colour = images.detach().to(ftype).clamp(0.0, RGB_MAX) * rgb_scale
    features = torch.cat([position, colour], dim=1).flatten(2).transpose(1, 2)  # (B, N, 5)
    flat = values.detach().flatten(2).transpose(1, 2)  # (B, N, K)
    if exact:
        filtered = _exact_filter(features, flat).to(values.dtype)
        return filtered.transpose(1, 2).reshape(n_batch, n_chan, height, width)
    feature_max = [(width - 1) * xy_scale, (height - 1) * xy_scale] + [RGB_MAX * rgb_scale] * 3
    lattice = PermutohedralLattice(features, feature_max)
    filtered = lattice.filter(flat) * LATTICE_GAIN
    return filtered.transpose(1, 2).reshape(n_batch, n_chan, height, width)


class _DenseCRFFunction(torch.autograd.Function):
    """-(1/B) sum S' W S, with the gradient -(2/B) W S taken from the forward pass."""

    @staticmethod
    def forward(
        ctx: Any, images: Tensor, probs: Tensor, sigma_rgb: float, sigma_xy: float, kernel: str
    ) -> Tensor:
        filtered = bilateral_filter(images, probs, sigma_rgb=sigma_rgb, sigma_xy=sigma_xy, kernel=kernel)
        ctx.save_for_backward(filtered)
        return -(probs * filtered).sum() / probs.shape[0]

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[None, Tensor, None, None, None]:
        (filtered,) = ctx.saved_tensors
        return None, grad_output * filtered * (-2.0 / filtered.shape[0]), None, None, None


def dense_crf_loss(
    images: Tensor,
    probs: Tensor,
    *,
    sigma_rgb: float = 15.0,
    sigma_xy: float = 100.0,
    scale: float = 1.0,
    kernel: str = "auto",
) -> Tensor:
    """Dense CRF loss ``-(1/B) sum_b sum_k S_b^k' W_b S_b^k`` of Tang et al. (ECCV 2018).

    Args:
        images: (B, 3, H, W) float, raw RGB in [0, 255] (not ImageNet-normalised), no gradient.
        probs: (B, K, H, W) float, softmax probabilities (any K >= 1), same device as ``images``.
        sigma_rgb: colour standard deviation of the kernel.
        sigma_xy: spatial standard deviation in pixels at full resolution.
        scale: in (0, 1]; below 1 the loss is computed on downsampled inputs (module docstring).
        kernel: "auto", "lattice" or "exact", as :func:`bilateral_filter` (on the downsampled size).

    Returns:
        Scalar tensor (dtype of ``probs``), <= 0, before the loss weight. Its gradient with
        respect to the (downsampled) ``probs`` is ``-(2/B) W S``.

    Raises:
        ValueError: bad shapes, devices, sigmas, scale or kernel.
    """
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(_KERNELS)}, got {kernel!r}")
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    _check(images, probs, sigma_rgb, sigma_xy)
    if scale != 1.0:
        images = F.interpolate(images, scale_factor=scale, mode="nearest", recompute_scale_factor=False)
        probs = F.interpolate(
            probs, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
        )
        sigma_xy = sigma_xy * scale
    return _DenseCRFFunction.apply(images, probs, float(sigma_rgb), float(sigma_xy), kernel)


class DenseCRFLoss(nn.Module):
    """Module form of :func:`dense_crf_loss` (Tang et al., ECCV 2018), weight not included.

    Example:
        >>> crf = DenseCRFLoss(sigma_rgb=15.0, sigma_xy=100.0)
        >>> loss = PAPER_CRF_WEIGHT_EXACT * crf(raw_images, torch.softmax(logits, dim=1))
    """

    def __init__(
        self, sigma_rgb: float = 15.0, sigma_xy: float = 100.0, scale: float = 1.0, kernel: str = "auto"
    ) -> None:
        super().__init__()
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(_KERNELS)}, got {kernel!r}")
        if not (sigma_rgb > 0 and sigma_xy > 0):
            raise ValueError(f"sigma_rgb and sigma_xy must be > 0, got {sigma_rgb} and {sigma_xy}")
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        self.sigma_rgb = float(sigma_rgb)
        self.sigma_xy = float(sigma_xy)
        self.scale = float(scale)
        self.kernel = kernel

    def forward(self, images: Tensor, probs: Tensor) -> Tensor:
        """See :func:`dense_crf_loss`: images (B, 3, H, W) in [0, 255], probs (B, K, H, W)."""
        return dense_crf_loss(
            images, probs, sigma_rgb=self.sigma_rgb, sigma_xy=self.sigma_xy, scale=self.scale,
            kernel=self.kernel,
        )

    def extra_repr(self) -> str:
        return (f"sigma_rgb={self.sigma_rgb}, sigma_xy={self.sigma_xy}, scale={self.scale}, "
                f"kernel={self.kernel}")
