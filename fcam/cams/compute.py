"""One entry point for every CAM method: :func:`compute_cams`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fcam.cams.activation import CAM
from fcam.cams.core import BaseCAM
from fcam.cams.gradient import GradCAM, GradCAMpp, LayerCAM, SmoothGradCAMpp, XGradCAM
from fcam.constants import CAM_METHODS

__all__ = ["METHOD_CLASSES", "compute_cams"]

#: The class of each method of :data:`fcam.constants.CAM_METHODS`.
METHOD_CLASSES: dict[str, type[BaseCAM]] = {
    "cam": CAM,
    "gradcam": GradCAM,
    "gradcampp": GradCAMpp,
    "smoothgradcampp": SmoothGradCAMpp,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
}
assert tuple(METHOD_CLASSES) == CAM_METHODS


def compute_cams(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    method: str,
    *,
    target_layer: nn.Module | None = None,
    reference: bool = False,
    smooth_samples: int = 4,
    smooth_std: float = 0.3,
    generator: torch.Generator | None = None,
    return_logits: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Class activation maps of a batch, each for its own label, with one of the six methods.

    The whole batch goes through one forward pass and, for the gradient methods, one backward
    pass (Smooth-Grad-CAM++: one clean forward plus one forward and backward per noisy pass),
    with the model in eval mode and no gradient left in its parameters; works inside
    ``torch.no_grad()``. See :mod:`fcam.cams.core` for how and why, and each class for its formula.

    Args:
        model: classifier, images (B, 3, H, W) -> logits (B, K); run in eval mode during the call,
            its train/eval and requires_grad flags restored afterwards.
        images: (B, 3, H, W) floating, normalised as the model expects.
        labels: (B,) int64 class of each image; its logit is the score that is differentiated.
        method: one of :data:`fcam.constants.CAM_METHODS`: "cam" (:class:`CAM`), "gradcam"
            (:class:`GradCAM`), "gradcampp" (:class:`GradCAMpp`), "smoothgradcampp"
            (:class:`SmoothGradCAMpp`), "xgradcam" (:class:`XGradCAM`), "layercam" (:class:`LayerCAM`).
        target_layer: module whose output is the feature map A (B, C, h, w); defaults to
            ``model.target_layer``. CAM also needs the GAP + linear head: ``model.fc`` if it is an
            ``nn.Linear``, else the last ``nn.Linear`` of the model.
        reference: reproduce the authors' code instead of the textbook formulas (docs/method.md
            §8): CAM without ReLU, Grad-CAM++ weights sum ReLU(g)^3, Smooth-Grad-CAM++ with the
            last noisy pass's gradient and activation; no change for the other methods.
        smooth_samples: number of noisy passes of Smooth-Grad-CAM++ (ignored by the others).
        smooth_std: standard deviation of its input noise (ignored by the others).
        generator: random generator of its noise (ignored by the others).
        return_logits: also return the logits of the clean forward pass.

    Returns:
        cams: (B, h, w) float32 in [0, 1] at the target layer's resolution, min-max normalised per
        image (a constant map gives zeros); with ``return_logits``, ``(cams, logits)``, logits
        (B, K) detached in the model's dtype.

    Raises:
        ValueError: unknown method, no target layer, bad shapes or labels, a target layer or head
            that does not fit, or non-finite maps (the message names the culprit).
        TypeError: arguments of the wrong type.

    Example:
        >>> model = fcam.models.build_classifier("resnet50", num_classes=200)
        >>> cams, logits = compute_cams(model, images, labels, "gradcampp", return_logits=True)
    """
    if method not in METHOD_CLASSES:
        raise ValueError(f"unknown CAM method {method!r}; expected one of {', '.join(CAM_METHODS)}")
    if method == "smoothgradcampp":
        extractor: BaseCAM = SmoothGradCAMpp(
            model, target_layer, reference=reference,
            num_samples=smooth_samples, std=smooth_std, generator=generator,
        )
    else:
        extractor = METHOD_CLASSES[method](model, target_layer, reference=reference)
    return extractor(images, labels, return_logits=return_logits)
