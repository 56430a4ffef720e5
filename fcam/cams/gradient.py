"""Gradient-based CAM methods: the channel weights come from g = dY/dA at the target layer.

Notation as in :mod:`fcam.cams.core`: A (B, C, h, w) target-layer activation, Y the logit of the
image's class, g = dY/dA, sums over i, j run over the h x w positions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fcam.cams.core import BaseCAM, _Pass

__all__ = ["GradCAM", "GradCAMpp", "LayerCAM", "SmoothGradCAMpp", "XGradCAM"]

_SPATIAL = (2, 3)


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, and 0 wherever the denominator is 0 (no NaN, no inf)."""
    nonzero = denominator != 0
    safe = torch.where(nonzero, denominator, torch.ones_like(denominator))
    return torch.where(nonzero, numerator / safe, 0)


def _gradcampp_alpha(activation: Tensor, grad2: Tensor, grad3: Tensor) -> Tensor:
    """Grad-CAM++ pixel coefficients alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), 0 where the denominator is 0.

    Args:
        activation: (B, C, h, w) A.
        grad2: (B, C, h, w) g^2 (or its average over noisy passes).
        grad3: (B, C, h, w) g^3 (or its average over noisy passes).

    Returns:
        (B, C, h, w) alpha.
    """
    activation_sum = activation.sum(dim=_SPATIAL, keepdim=True)
    return _safe_divide(grad2, 2 * grad2 + activation_sum * grad3)


class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017, https://arxiv.org/abs/1610.02391).

    The channel weight is the spatial mean of the gradient:

        W[b, c] = 1/(h w) sum_ij g[b, c, i, j]        cam_b = minmax(ReLU(sum_c W[b, c] A[b, c]))

    For a GAP + linear head and the last feature map, g = w[y] / (h w) at every position, so
    Grad-CAM equals CAM (up to CAM*'s missing ReLU). ``reference`` changes nothing: the authors'
    code computes the same thing. One forward, one backward (through the head only).

    Example:
        >>> model = torchvision.models.resnet18(weights=None)
        >>> cams = GradCAM(model, model.layer4)(images, labels)  # (B, h, w) float32 in [0, 1]
    """

    def _weights(self, activation: Tensor, gradient: Tensor | None, labels: Tensor) -> Tensor:
        assert gradient is not None
        return gradient.mean(dim=_SPATIAL, keepdim=True)


class GradCAMpp(BaseCAM):
    """Grad-CAM++ (Chattopadhay et al., "Grad-CAM++: Generalized Gradient-based Visual
    Explanations for Deep Convolutional Networks", WACV 2018, https://arxiv.org/abs/1710.11063).

    With the exponential-of-logit closed form of the higher derivatives (Eq. 19 of the paper),
    the pixel coefficients and channel weights are

        alpha[b, c, i, j] = g^2 / (2 g^2 + sum_ab A[b, c, a, b] g^3)      (0 where the denominator is 0)
        W[b, c] = sum_ij alpha[b, c, i, j] ReLU(g[b, c, i, j])
        cam_b = minmax(ReLU(sum_c W[b, c] A[b, c]))

    as pytorch-grad-cam implements it, without its eps in the denominator (with 28 x 28 maps
    g^2 is often below that eps, which would then dominate alpha).

    ``reference=True``: the authors' code normalises a copy of alpha (a boolean-indexed tensor),
    which leaves alpha = g^2, so its weights are ``W[b, c] = sum_ij ReLU(g)^3`` (docs/method.md §8).

    Example:
        >>> model = torchvision.models.resnet18(weights=None)
        >>> cams = GradCAMpp(model, model.layer4)(images, labels)  # (B, h, w) float32 in [0, 1]
    """

    def _weights(self, activation: Tensor, gradient: Tensor | None, labels: Tensor) -> Tensor:
        assert gradient is not None
        positive = torch.relu(gradient)
        if self.reference:
            # g^2 * ReLU(g) == ReLU(g)^3
            return positive.pow(3).sum(dim=_SPATIAL, keepdim=True)
        grad2 = gradient.square()
        alpha = _gradcampp_alpha(activation, grad2, grad2 * gradient)
        return (alpha * positive).sum(dim=_SPATIAL, keepdim=True)


class SmoothGradCAMpp(BaseCAM):
    """Smooth Grad-CAM++ (Omeiza et al., "Smooth Grad-CAM++: An Enhanced Inference Level
    Visualization Technique for Deep Convolutional Neural Network Models", 2019,
    https://arxiv.org/abs/1908.01224).

    Grad-CAM++ whose derivative terms are averaged (SmoothGrad) over n noisy copies of the input
    x_m = x + eps_m, eps_m ~ N(0, std^2) i.i.d. per pixel, with g_m = dY/dA at x_m:

        D_p = 1/n sum_m g_m^p                                        (p = 1, 2, 3)
        alpha = D_2 / (2 D_2 + sum_ab A_ab D_3)                       (0 where the denominator is 0)
        W[b, c] = sum_ij alpha ReLU(D_1)
        cam_b = minmax(ReLU(sum_c W[b, c] A[b, c]))                  A from the clean input

    The numerator of alpha is D_2 (torch-cam's correction of the paper's D_1, which is
    dimensionally inconsistent). One clean forward (A and the logits) plus one forward and one
    backward per noisy pass, each over the whole batch.

    ``reference=True`` reproduces the authors' code (fcam-wsol ``dlib/cams/gradcam.py``,
    ``SmoothGradCAMpp._get_weights`` and ``core.py`` ``_CAM.compute_cams``, a torch-cam fork;
    torch-cam 0.5 computes the same up to its eps = 1e-8), three differences
    (docs/method.md §8):

    - alpha's sum is the spatial sum of the *product* with the clean activation A, not
      ``sum(A)`` times the pixel's D_3: ``alpha = D_2 / (2 D_2 + sum_ab D_3[a, b] A[a, b])``,
      by plain division (0/0 gives NaN);
    - ``W = sum_ij alpha ReLU(g_n)`` with the gradient of the last noisy pass only;
    - the map combines the activation of the last noisy pass, with NaN terms dropped
      (``torch.nansum`` over channels, so a channel whose weight is NaN counts as 0):
      ``cam = minmax(ReLU(nansum_c W_c A_c(x_n)))``.

    For a GAP + linear head on the target layer (every fcam classifier) ``g = w[y] / (h w)`` is
    the same at every position and for every input, and the first difference vanishes.

    Args:
        model: as in :class:`~fcam.cams.core.BaseCAM`.
        target_layer: as in :class:`~fcam.cams.core.BaseCAM`.
        reference: see above.
        num_samples: n >= 1 noisy passes (4 in the reference runs).
        std: noise standard deviation >= 0, in the units of the (normalised) input (0.3 in the reference).
        generator: random generator for the noise (default: torch's global generator on the
            images' device). Pass a seeded one for reproducible maps; the noise of pass m is the
            m-th ``torch.randn(images.shape, generator=generator)`` draw, times ``std``.

    Raises:
        ValueError: ``num_samples`` < 1 or ``std`` negative or not finite.

    Example:
        >>> model = torchvision.models.resnet18(weights=None)
        >>> extractor = SmoothGradCAMpp(model, model.layer4, generator=torch.Generator().manual_seed(0))
        >>> cams = extractor(images, labels)  # (B, h, w) float32 in [0, 1]
    """

    #: The clean pass gives A and the logits only; the gradients come from the noisy passes.
    needs_gradient = False

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module | None = None,
        *,
        reference: bool = False,
        num_samples: int = 4,
        std: float = 0.3,
        generator: torch.Generator | None = None,
    ):
        super().__init__(model, target_layer, reference=reference)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"smooth_samples must be an integer >= 1, got {num_samples!r}")
        if not isinstance(std, int | float) or not math.isfinite(std) or std < 0:
            raise ValueError(f"smooth_std must be a finite number >= 0, got {std!r}")
        self.num_samples = num_samples
        self.std = float(std)
        self.generator = generator

    def _noise(self, images: Tensor) -> Tensor:
        """eps ~ N(0, std^2): (B, 3, H, W), drawn on the generator's device, moved to the images'."""
        device = self.generator.device if self.generator is not None else images.device
        noise = torch.randn(images.shape, generator=self.generator, device=device, dtype=images.dtype)
        return noise.to(images.device).mul_(self.std)

    def _maps_from_pass(self, clean: _Pass, images: Tensor, labels: Tensor) -> Tensor:
        """The clean pass gives A (and the logits); the n noisy passes, run here, give the g_m."""
        moments = [torch.zeros_like(clean.activation) for _ in range(3)]  # sums of g, g^2, g^3
        for _ in range(self.num_samples):
            noisy = self._pass(images + self._noise(images), labels, with_gradient=True)
            gradient = noisy.gradient
            assert gradient is not None
            grad2 = gradient.square()
            moments[0].add_(gradient)
            moments[1].add_(grad2)
            moments[2].add_(grad2 * gradient)
        mean1, mean2, mean3 = (moment / self.num_samples for moment in moments)
        if self.reference:
            # The authors' quirks: sum_ab D3 A in alpha, the last pass's gradient in the ReLU term,
            # the last pass's activation, NaN channels dropped.
            spread = (mean3 * clean.activation).sum(dim=_SPATIAL, keepdim=True)
            alpha = mean2 / (2 * mean2 + spread)
            weights = (alpha * torch.relu(gradient)).sum(dim=_SPATIAL, keepdim=True)
            return torch.relu(torch.nansum(weights * noisy.activation, dim=1))
        alpha = _gradcampp_alpha(clean.activation, mean2, mean3)
        weights = (alpha * torch.relu(mean1)).sum(dim=_SPATIAL, keepdim=True)
        return self._combine(weights, clean.activation)


class XGradCAM(BaseCAM):
    """XGrad-CAM (Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and
    Explanation of CNNs", BMVC 2020, https://arxiv.org/abs/2008.02312).

    The gradient is averaged with the activation's own spatial distribution as weights:

        W[b, c] = sum_ij (A[b, c, i, j] / sum_ab A[b, c, a, b]) g[b, c, i, j]   (0 where sum_ab A = 0)
        cam_b = minmax(ReLU(sum_c W[b, c] A[b, c]))

    ``reference`` changes nothing: the authors' code computes the same thing (without the
    zero-sum guard).

    Example:
        >>> model = torchvision.models.resnet18(weights=None)
        >>> cams = XGradCAM(model, model.layer4)(images, labels)  # (B, h, w) float32 in [0, 1]
    """

    def _weights(self, activation: Tensor, gradient: Tensor | None, labels: Tensor) -> Tensor:
        assert gradient is not None
        weighted = (gradient * activation).sum(dim=_SPATIAL, keepdim=True)
        return _safe_divide(weighted, activation.sum(dim=_SPATIAL, keepdim=True))


class LayerCAM(BaseCAM):
    """LayerCAM (Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization", IEEE TIP 2021, http://mmcheng.net/mftp/Papers/21TIP_LayerCAM.pdf).

    Every position keeps its own weight, the positive part of the gradient:

        W[b, c, i, j] = ReLU(g[b, c, i, j])        cam_b = minmax(ReLU(sum_c W[b, c] * A[b, c]))

    ``reference`` changes nothing: the authors' code computes the same thing.

    Example:
        >>> model = torchvision.models.resnet18(weights=None)
        >>> cams = LayerCAM(model, model.layer4)(images, labels)  # (B, h, w) float32 in [0, 1]
    """

    def _weights(self, activation: Tensor, gradient: Tensor | None, labels: Tensor) -> Tensor:
        assert gradient is not None
        return torch.relu(gradient)
