"""What every CAM method shares: target-layer hooks, input checks, eval mode, min-max normalisation.

A CAM method turns the feature map of a target layer into one map per image, for the image's
own class. Notation (used by every docstring of :mod:`fcam.cams`): B images of size H x W,
K classes, target-layer activation ``A: (B, C, h, w)``, ``Y = logits[b, y_b]`` the logit of the
class ``y_b`` of image b (pre-softmax, as in the reference code, docs/method.md §8),
``g = dY/dA: (B, C, h, w)`` its gradient at the target layer. Every method computes

    M_b = sum_c W[b, c] * A[b, c]                 W: (B, C, 1, 1) channel weights, or (B, C, h, w)
    cam_b = minmax(ReLU(M_b))                     minmax(m) = (m - min m) / (max m - min m)

and the subclasses of :class:`BaseCAM` differ only in ``W`` (and in whether the ReLU is applied).

How the batch is handled, and why:

- The model runs in eval mode (BatchNorm on running statistics, Dropout off), so the images of
  a batch do not interact; then the gradient of ``sum_b logits[b, y_b]`` with respect to
  ``A[b]`` is exactly image b's own ``dY/dA``, and one backward serves the whole batch.
- A forward hook on the target layer detaches its output into a leaf tensor that requires grad
  and hands the rest of the model a copy of it. ``torch.autograd.grad`` then differentiates
  the score with respect to that leaf only: the backward pass covers the layers after the target
  layer (for a GAP + linear head, two cheap ops), never the backbone, and no ``.grad`` is ever
  written into the model's parameters. The copy also protects the captured activation from
  in-place ops downstream (e.g. ``ReLU(inplace=True)``).
- Parameters have ``requires_grad`` switched off during the call so that the backbone's graph is
  not even recorded; train/eval flags and ``requires_grad`` flags are restored in ``finally``.
- The clean pass (A, the logits, and g if needed) is all that CAM, Grad-CAM, Grad-CAM++,
  XGrad-CAM and LayerCAM read, and Smooth-Grad-CAM++ reads its A and logits: :func:`run_cams`
  makes it once and gives it to several methods (:func:`fcam.cams.compute_cams_multi`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["BaseCAM", "minmax_normalize", "run_cams"]


def minmax_normalize(maps: Tensor) -> Tensor:
    """Min-max normalise each map of a batch to [0, 1]; a constant map becomes all zeros.

    Args:
        maps: (B, h, w) floating, finite.

    Returns:
        (B, h, w), same dtype as ``maps``, in [0, 1]: ``(m - min m) / (max m - min m)`` per image,
        or all zeros where ``max m == min m`` (no NaN, unlike a plain division).
    """
    flat = maps.flatten(1)
    low = flat.amin(dim=1)[:, None, None]
    span = flat.amax(dim=1)[:, None, None] - low
    nonconstant = span > 0
    scaled = (maps - low) / torch.where(nonconstant, span, torch.ones_like(span))
    return torch.where(nonconstant, scaled, torch.zeros_like(scaled))


@dataclass(frozen=True)
class _Pass:
    """The outcome of one forward (and optional backward) pass over a batch."""

    activation: Tensor  # (B, C, h, w), detached
    logits: Tensor  # (B, K), detached
    gradient: Tensor | None  # (B, C, h, w) dY/dA, or None for a forward-only pass


@contextmanager
def _frozen_eval(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode with every parameter frozen; restore both flags on exit."""
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    try:
        model.eval()
        for param, _ in flags:
            param.requires_grad_(False)
        yield
    finally:
        # Set the attribute directly, as torch-cam does: a module's own train() override must not
        # turn the restore into something other than the flags we saved.
        for module, training in modes:
            module.training = training
        for param, requires_grad in flags:
            param.requires_grad_(requires_grad)


class BaseCAM:
    """Base class of the CAM methods: hooks, checks, eval mode, ReLU and min-max normalisation.

    A subclass overrides :meth:`_weights` (and :attr:`needs_gradient` for methods that do not use
    the gradient of the clean pass). Instances hold no hooks between calls: each call installs a
    forward hook on the target layer and removes it in ``finally``, so an instance may be kept and
    reused while the model trains. A call switches the model's train/eval and ``requires_grad``
    flags for its duration: do not run it while another thread uses the same model.

    A call is :func:`run_cams` with this one method: one clean pass (:meth:`_pass`), then the
    maps from that pass (:meth:`_maps_from_pass`); several methods on the same model and target
    layer can share the clean pass through :func:`run_cams`.

    Args:
        model: classifier mapping images (B, 3, H, W) to logits (B, K). It is run in eval mode
            during the call (see the module docstring); its flags are restored afterwards.
        target_layer: module of ``model`` whose output is the feature map A (B, C, h, w).
            Defaults to ``model.target_layer`` (every fcam classifier has one).
        reference: reproduce the quirks of the authors' code (docs/method.md §8) instead of the
            textbook formula; each method's docstring says what changes, if anything.

    Raises:
        TypeError: ``model`` or ``target_layer`` is not an ``nn.Module``.
        ValueError: no target layer is given and ``model`` has no ``target_layer``, or the
            target layer is not a submodule of ``model``.
    """

    #: Whether the method uses g = dY/dA of the clean pass (the one forward pass of the images
    #: as they are). False for CAM, and for Smooth-Grad-CAM++, whose gradients come from its own
    #: noisy passes.
    needs_gradient: bool = True

    def __init__(self, model: nn.Module, target_layer: nn.Module | None = None, *, reference: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        layer = target_layer if target_layer is not None else getattr(model, "target_layer", None)
        if layer is None:
            raise ValueError(
                f"{type(model).__name__} has no `target_layer` attribute: pass target_layer= "
                "(the module whose output is the (B, C, h, w) feature map)"
            )
        if not isinstance(layer, nn.Module):
            raise TypeError(f"target_layer must be a torch.nn.Module, got {type(layer).__name__}")
        if not any(module is layer for module in model.modules()):
            raise ValueError(
                f"target_layer {type(layer).__name__} is not a submodule of {type(model).__name__}"
            )
        self.model = model
        self.target_layer = layer
        self.reference = bool(reference)

    @property
    def relu(self) -> bool:
        """Whether the weighted sum goes through a ReLU before min-max (True for every method but CAM*)."""
        return True

    def __call__(
        self, images: Tensor, labels: Tensor, *, return_logits: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Compute the CAM of each image for its label.

        Args:
            images: (B, 3, H, W) floating, normalised as the model expects.
            labels: (B,) integer class indices in [0, K).
            return_logits: also return the logits of the clean forward pass.

        Returns:
            cams: (B, h, w) float32 in [0, 1] at the target layer's resolution, min-max normalised
            per image (a constant map gives all zeros); with ``return_logits``, ``(cams, logits)``
            where logits: (B, K), detached, in the model's dtype.

        Raises:
            TypeError: ``images`` or ``labels`` is not a tensor of the right kind.
            ValueError: bad shapes, a label outside [0, K), a target layer that is not run exactly
                once or does not output a 4-D tensor, a logit that does not depend on it, or a
                non-finite map.
        """
        (cams,), logits = run_cams([self], images, labels)
        return (cams, logits) if return_logits else cams

    def _maps_from_pass(self, clean: _Pass, images: Tensor, labels: Tensor) -> Tensor:
        """Un-normalised maps from the clean pass: M = sum_c W_c A_c, with the method's ReLU.

        Runs inside :func:`run_cams`'s eval-mode context, so a method that needs more passes
        (Smooth-Grad-CAM++) may call :meth:`_pass` itself.

        Args:
            clean: the pass of ``images`` as they are: A (B, C, h, w), logits (B, K), and
                g = dY/dA (B, C, h, w) if some method of the call needs it (always when this
                method's :attr:`needs_gradient` is True), else None.
            images: (B, 3, H, W), checked and detached.
            labels: (B,) int64 on the images' device.

        Returns:
            (B, h, w) in the activation's dtype, not normalised.
        """
        weights = self._weights(clean.activation, clean.gradient, labels)
        return self._combine(weights, clean.activation)

    def _weights(self, activation: Tensor, gradient: Tensor | None, labels: Tensor) -> Tensor:
        """Channel weights W: (B, C, 1, 1) or (B, C, h, w) from A: (B, C, h, w) and g = dY/dA."""
        raise NotImplementedError(f"{type(self).__name__} must implement _weights")

    def _combine(self, weights: Tensor, activation: Tensor) -> Tensor:
        """M = sum_c W_c A_c, then ReLU unless the method says otherwise: (B, h, w)."""
        maps = (weights * activation).sum(dim=1)
        return torch.relu(maps) if self.relu else maps

    def _normalise(self, maps: Tensor) -> Tensor:
        """Min-max normalised float32 maps (B, h, w) from ``maps`` (B, h, w), rejecting non-finite ones."""
        bad = (~torch.isfinite(maps)).flatten(1).any(dim=1).nonzero().flatten().tolist()
        if bad:
            raise ValueError(
                f"{type(self).__name__}: non-finite map for images {bad} of the batch "
                "(NaN or inf in the target layer's activation, its gradient, or the head weights)"
            )
        return minmax_normalize(maps).float()

    def _pass(self, images: Tensor, labels: Tensor, *, with_gradient: bool) -> _Pass:
        """One forward pass of the batch, plus ``dY/dA`` by one ``autograd.grad`` if asked.

        Args:
            images: (B, 3, H, W).
            labels: (B,) int64 on the images' device.
            with_gradient: differentiate ``sum_b logits[b, labels[b]]`` w.r.t. the activation.
        """
        captured: list[Tensor] = []

        def capture(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            if not isinstance(output, Tensor) or output.ndim != 4:
                shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
                name = type(module).__name__
                raise ValueError(f"target layer {name} must output (B, C, h, w), got {shape}")
            activation = output.detach().requires_grad_(with_gradient)
            captured.append(activation)
            return activation.clone()

        handle = self.target_layer.register_forward_hook(capture)
        try:
            with torch.set_grad_enabled(with_gradient):
                logits = self.model(images)
            if len(captured) != 1:
                raise ValueError(
                    f"target layer {type(self.target_layer).__name__} ran {len(captured)} times in one "
                    "forward pass; expected exactly once"
                )
            _check_logits(logits, labels)
            gradient = None
            if with_gradient:
                # Each image's own class logit; summed so that one backward gives every image's
                # gradient (images are independent in eval mode).
                score = logits.gather(1, labels[:, None]).sum()
                if score.requires_grad:
                    (gradient,) = torch.autograd.grad(score, captured[0], allow_unused=True)
                if gradient is None:
                    name = type(self.target_layer).__name__
                    raise ValueError(f"the logits do not depend on the output of target layer {name}")
        finally:
            handle.remove()
        return _Pass(activation=captured[0].detach(), logits=logits.detach(), gradient=gradient)


def run_cams(extractors: Sequence[BaseCAM], images: Tensor, labels: Tensor) -> tuple[list[Tensor], Tensor]:
    """The CAMs of several methods from one shared clean pass over the batch.

    One forward pass of ``images`` serves every method, with one backward (through the layers
    after the target layer) if any of them has :attr:`BaseCAM.needs_gradient`; each method then
    computes its maps from that pass (Smooth-Grad-CAM++ adds its own noisy passes). Every
    method's maps are exactly those of calling it alone: the pass is deterministic, and a
    gradient that a method does not use changes nothing in it.

    Args:
        extractors: one or more methods, all on the same model and target layer (the same
            objects), in the order of the returned maps.
        images: (B, 3, H, W) floating, normalised as the model expects.
        labels: (B,) integer class indices in [0, K).

    Returns:
        ``(cams, logits)``: cams, one (B, h, w) float32 in [0, 1] per extractor, min-max
        normalised per image (a constant map gives all zeros); logits (B, K) of the clean pass,
        detached, in the model's dtype.

    Raises:
        TypeError: ``images`` or ``labels`` is not a tensor of the right kind.
        ValueError: no extractor, extractors on different models or target layers, or any error
            of :meth:`BaseCAM.__call__` (the non-finite map error names the method).
    """
    if not extractors:
        raise ValueError("run_cams needs at least one CAM method")
    first = extractors[0]
    for extractor in extractors[1:]:
        if extractor.model is not first.model or extractor.target_layer is not first.target_layer:
            raise ValueError(
                f"{type(extractor).__name__} and {type(first).__name__} do not share the same model "
                "and target layer: one clean pass cannot serve both"
            )
    images, labels = _check_inputs(images, labels)
    with_gradient = any(extractor.needs_gradient for extractor in extractors)
    # inference_mode(False): a caller inside torch.inference_mode() still gets gradients.
    with _frozen_eval(first.model), torch.inference_mode(False):
        clean = first._pass(images, labels, with_gradient=with_gradient)
        maps = [extractor._maps_from_pass(clean, images, labels) for extractor in extractors]
    return [extractor._normalise(m) for extractor, m in zip(extractors, maps, strict=True)], clean.logits


def _check_inputs(images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Validate images (B, 3, H, W) and labels (B,); return detached images and int64 labels."""
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got {_describe(images)}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    integer = isinstance(labels, Tensor) and not (
        labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool
    )
    if not integer:
        raise TypeError(f"labels must be an integer tensor, got {_describe(labels)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape (B,) = ({images.shape[0]},), got {tuple(labels.shape)}")
    return images.detach(), labels.to(device=images.device, dtype=torch.int64)


def _check_logits(logits: Tensor, labels: Tensor) -> None:
    """The model must return (B, K) logits and every label must index one of them."""
    if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits (B, K) = ({labels.shape[0]}, K), got {shape}")
    bad = ((labels < 0) | (labels >= logits.shape[1])).nonzero().flatten()
    if bad.numel():
        raise ValueError(
            f"labels must be in [0, {logits.shape[1]}): "
            f"images {bad.tolist()} have labels {labels[bad].tolist()}"
        )


def _describe(value: object) -> str:
    return f"tensor of dtype {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
