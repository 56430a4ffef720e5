"""The entry points: :func:`compute_cams` for one CAM method, :func:`compute_cams_multi` for several
methods sharing one clean pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fcam.cams.activation import CAM
from fcam.cams.core import BaseCAM, run_cams
from fcam.cams.gradient import GradCAM, GradCAMpp, LayerCAM, SmoothGradCAMpp, XGradCAM
from fcam.constants import CAM_METHODS

__all__ = ["METHOD_CLASSES", "compute_cams", "compute_cams_multi"]

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
    extractor = _extractor(
        model, method, target_layer=target_layer, reference=reference,
        smooth_samples=smooth_samples, smooth_std=smooth_std, generator=generator,
    )
    return extractor(images, labels, return_logits=return_logits)


def compute_cams_multi(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    methods: Sequence[str],
    *,
    target_layer: nn.Module | None = None,
    reference: bool = False,
    smooth_samples: int = 4,
    smooth_std: float = 0.3,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """Class activation maps of a batch with several methods at once, from one shared clean pass.

    One forward pass of the batch serves every method, plus one backward (through the layers
    after the target layer) if any of "gradcam", "gradcampp", "xgradcam", "layercam" is listed,
    plus Smooth-Grad-CAM++'s ``smooth_samples`` noisy passes (a forward and a backward each) if
    it is listed: 1 forward for any set of the five other methods instead of one per method.
    Each method's maps are those of :func:`compute_cams` with the same arguments (Smooth-Grad-CAM++
    given a generator in the same state, which only it draws from), and so are the logits.
    Same model handling as :func:`compute_cams`: eval mode during the call, flags restored, no
    gradient left in the parameters, works inside ``torch.no_grad()`` and ``torch.inference_mode()``.

    Args:
        model: classifier, images (B, 3, H, W) -> logits (B, K).
        images: (B, 3, H, W) floating, normalised as the model expects.
        labels: (B,) int64 class of each image.
        methods: one or more distinct names of :data:`fcam.constants.CAM_METHODS`, in any order.
        target_layer: as in :func:`compute_cams`, shared by all methods.
        reference: as in :func:`compute_cams`, for every method.
        smooth_samples: number of noisy passes of Smooth-Grad-CAM++ (ignored without it).
        smooth_std: standard deviation of its input noise (ignored without it).
        generator: random generator of its noise (ignored without it).

    Returns:
        ``(cams, logits)``: cams maps each method, in the order of ``methods``, to its
        (B, h, w) float32 maps in [0, 1] at the target layer's resolution, min-max normalised per
        image; logits (B, K) of the clean pass, detached, in the model's dtype.

    Raises:
        TypeError: ``methods`` is a string rather than a sequence of names, or arguments of the
            wrong type as in :func:`compute_cams`.
        ValueError: no method, unknown or repeated methods (the message names them), or any error
            of :func:`compute_cams` (a non-finite map names its method).

    Example:
        >>> model = fcam.models.build_classifier("resnet50", num_classes=200)
        >>> cams, logits = compute_cams_multi(model, images, labels, ["cam", "gradcampp"])
        >>> cams["gradcampp"].shape  # (B, h, w)
    """
    names = _check_methods(methods)
    extractors = [
        _extractor(
            model, method, target_layer=target_layer, reference=reference,
            smooth_samples=smooth_samples, smooth_std=smooth_std, generator=generator,
        )
        for method in names
    ]
    cams, logits = run_cams(extractors, images, labels)
    return dict(zip(names, cams, strict=True)), logits


def _check_methods(methods: Sequence[str]) -> list[str]:
    """The method names as a list, once each and all known, else the error that names the culprits."""
    if isinstance(methods, str):
        raise TypeError(f"methods must be a sequence of CAM method names, not the string {methods!r}")
    names = list(methods)
    if not names:
        raise ValueError(f"methods is empty; expected one or more of {', '.join(CAM_METHODS)}")
    unknown = [name for name in names if name not in METHOD_CLASSES]
    if unknown:
        raise ValueError(
            f"unknown CAM methods {', '.join(map(repr, unknown))}; expected one of {', '.join(CAM_METHODS)}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1}, key=names.index)
    if repeated:
        raise ValueError(f"CAM methods listed more than once: {', '.join(map(repr, repeated))}")
    return names


def _extractor(
    model: nn.Module,
    method: str,
    *,
    target_layer: nn.Module | None,
    reference: bool,
    smooth_samples: int,
    smooth_std: float,
    generator: torch.Generator | None,
) -> BaseCAM:
    """The extractor of a known ``method``; the Smooth-Grad-CAM++ arguments go to it only."""
    if method == "smoothgradcampp":
        return SmoothGradCAMpp(
            model, target_layer, reference=reference,
            num_samples=smooth_samples, std=smooth_std, generator=generator,
        )
    return METHOD_CLASSES[method](model, target_layer, reference=reference)
