"""Checkpoints of the two phases: what they hold, and the models rebuilt from them.

Every checkpoint is a dict of tensors and plain values, loaded with ``weights_only=True``
(:func:`fcam.io.load_checkpoint`), so a file cannot run code.

- Classifier (phase 1): ``{"kind": "classifier", "model": state_dict, "backbone", "num_classes",
  "ds", "epoch"}``. Nothing method-specific: methods that select the same epoch get byte-identical
  files, which the training job stores once.
- Decoder (phase 2): ``{"kind": "decoder", "decoder": state_dict, "backbone", "encoder_channels",
  "classifier" (path of the classifier it was trained on), "ds", "method", "epoch", "score",
  "resize_size", "crop_size", "setting"}``; F-CAM = that classifier (frozen) + this decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fcam.errors import CheckpointError
from fcam.io import load_checkpoint

if TYPE_CHECKING:
    from fcam.models.classifier import WSOLClassifier
    from fcam.models.decoder import FCAM

__all__ = ["classifier_checkpoint", "decoder_checkpoint", "load_classifier", "load_fcam"]


def classifier_checkpoint(model: WSOLClassifier, *, ds: str, epoch: int) -> dict[str, Any]:
    """The checkpoint dict of a classifier after ``epoch`` (0: before any update)."""
    return {
        "kind": "classifier",
        "model": model.state_dict(),
        "backbone": model.backbone,
        "width": model.width,
        "num_classes": model.num_classes,
        "ds": ds,
        "epoch": epoch,
    }


def load_classifier(path: Path, device: torch.device) -> WSOLClassifier:
    """Rebuild a classifier from a phase-1 checkpoint: frozen, in eval mode, on ``device``.

    Raises:
        CheckpointError: missing or unreadable file, not a classifier, or weights that do not fit.
    """
    from fcam.models import build_classifier  # only jobs that build a network import the models

    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.get("kind") != "classifier":
        raise CheckpointError(f"{path}: not a classifier checkpoint (kind={ckpt.get('kind')!r})")
    width = ckpt.get("width", 1.0)
    model = build_classifier(ckpt["backbone"], ckpt["num_classes"], pretrained="none", width=width)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit a {ckpt['backbone']} classifier: {exc}") from exc
    return model.to(device).eval().requires_grad_(False)


def decoder_checkpoint(
    model: FCAM, *, classifier: Path, epoch: int, score: float, **info: Any
) -> dict[str, Any]:
    """The checkpoint dict of an F-CAM decoder.

    Args:
        model: the F-CAM model whose decoder is saved.
        classifier: the classifier checkpoint it was trained on (``fcam localize`` finds it there).
        epoch: the epoch after which it was saved; score: its validation localisation (percent).
        info: ``ds``, ``method``, ``resize_size``, ``crop_size`` (the input size it was trained at,
            ``fcam localize``'s default), ``setting`` (the search point), ...
    """
    return {
        "kind": "decoder",
        "decoder": model.decoder.state_dict(),
        "backbone": model.classifier.backbone,
        "width": model.classifier.width,
        "encoder_channels": list(model.classifier.encoder.out_channels),
        "classifier": str(classifier),
        "epoch": epoch,
        "score": score,
        **info,
    }


def load_fcam(decoder_path: Path, classifier_path: Path, device: torch.device) -> FCAM:
    """Rebuild F-CAM (frozen classifier + trained decoder) from the two checkpoints, in eval mode.

    Raises:
        CheckpointError: either file is missing, unreadable, of the wrong kind, or does not fit.
    """
    from fcam.models import FCAM, build_decoder

    ckpt = load_checkpoint(decoder_path, map_location=device)
    if ckpt.get("kind") != "decoder":
        raise CheckpointError(f"{decoder_path}: not a decoder checkpoint (kind={ckpt.get('kind')!r})")
    classifier = load_classifier(classifier_path, device)
    decoder = build_decoder(ckpt["backbone"], tuple(ckpt["encoder_channels"]), ckpt.get("width", 1.0))
    try:
        decoder.load_state_dict(ckpt["decoder"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{decoder_path}: weights do not fit a {ckpt['backbone']} decoder: {exc}"
        ) from exc
    return FCAM(classifier, decoder).to(device).eval()
