"""The WSOL classifier of phase 1: encoder + global average pooling + one linear layer.

This is the CAM architecture of Zhou et al. ("Learning Deep Features for Discriminative
Localization", CVPR 2016) on the backbones of Choe et al. (CVPR 2020): for the deep map
``A: (B, C, h, w)`` the logits are ``z_k = sum_c W_kc * mean_hw(A_c) + b_k``, so the CAM of class k
is ``sum_c W_kc * A_c`` with ``W = fc.weight``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from fcam.errors import ConfigError
from fcam.models.backbones import Encoder, build_encoder

__all__ = ["NEW_LAYER_LR_MULT", "WSOLClassifier", "build_classifier"]

#: Learning-rate factor of the "classifier" group: the head and the encoder layers of
#: :meth:`~fcam.models.backbones.Encoder.fast_lr_modules` (wsolevaluation's ``lr_classifier_ratio``).
NEW_LAYER_LR_MULT = 10.0


def _check_num_classes(num_classes: object) -> None:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")


class WSOLClassifier(nn.Module):
    """Encoder + global average pooling + ``fc: nn.Linear(C, K)``.

    Args:
        encoder: a :class:`~fcam.models.backbones.Encoder`.
        num_classes: K >= 1.

    Attributes:
        backbone: the encoder's backbone name.
        num_classes: K.
        encoder: the encoder.
        fc: the linear head, Xavier-uniform weights and zero bias (the authors' init).
    """

    def __init__(self, encoder: Encoder, num_classes: int) -> None:
        super().__init__()
        _check_num_classes(num_classes)
        self.backbone: str = encoder.backbone
        self.width: float = getattr(encoder, "width", 1.0)
        self.num_classes = num_classes
        self.encoder = encoder
        self.fc = nn.Linear(encoder.out_channels[-1], num_classes)
        # The authors' head init (fcam-wsol dlib/base/initialization.py initialize_head).
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output is the deep feature map (CAM hooks)."""
        return self.encoder.target_layer

    def forward_features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Encoder features and logits in one forward pass.

        Args:
            x: (B, 3, H, W) float32, ImageNet-normalised.

        Returns:
            ``(features, logits)``: the encoder's list (shallow -> deep, last (B, C, h, w)) and
            logits (B, K) float32.
        """
        features = self.encoder(x)
        logits = self.fc(features[-1].mean(dim=(2, 3)))
        return features, logits

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: (B, 3, H, W) float32. Returns: logits (B, K) float32."""
        return self.forward_features(x)[1]

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups split as in wsolevaluation: "features" at ``lr``,
        "classifier" at ``NEW_LAYER_LR_MULT * lr``.

        The "classifier" group is ``fc`` plus :meth:`Encoder.fast_lr_modules
        <fcam.models.backbones.Encoder.fast_lr_modules>`; this is wsolevaluation's rule
        (``main.py``: ``_FEATURE_PARAM_LAYER_PATTERNS``, ``_set_optimizer``) written on fcam's
        module names, and the F-CAM code uses the same rule (fcam-wsol
        ``dlib/process/instantiators.py``):

        - ResNet50: ``layer4.*`` and the head at 10x (about 15.4M parameters with 200 classes);
        - VGG16: everything outside ``features.*`` at 10x (conv6 and the head);
        - InceptionV3: everything outside ``Mixed*`` and ``Conv2d_1..4*`` at 10x (the two added
          convs and the head).

        Every parameter appears in exactly one group.

        Args:
            lr: base learning rate.

        Returns:
            ``[{"name": "features", "params": [...], "lr": lr},
            {"name": "classifier", "params": [...], "lr": NEW_LAYER_LR_MULT * lr}]``, parameters
            in ``named_parameters`` order.
        """
        fast = [*self.encoder.fast_lr_modules(), self.fc]
        fast_ids = {id(p) for m in fast for p in m.parameters()}
        params = list(self.parameters())
        return [
            {"name": "features", "params": [p for p in params if id(p) not in fast_ids], "lr": lr},
            {
                "name": "classifier",
                "params": [p for p in params if id(p) in fast_ids],
                "lr": NEW_LAYER_LR_MULT * lr,
            },
        ]


def build_classifier(
    backbone: str, num_classes: int, *, pretrained: str = "none", width: float = 1.0
) -> WSOLClassifier:
    """Build the WSOL classifier of ``backbone`` with ``num_classes`` outputs.

    Args:
        backbone: one of :data:`fcam.constants.BACKBONES`.
        num_classes: K >= 1.
        pretrained: "none" or "imagenet" (see :func:`~fcam.models.backbones.build_encoder`).
        width: channel multiplier of the encoder (see :func:`~fcam.models.backbones.build_encoder`).

    Raises:
        ConfigError: unknown backbone/pretrained, bad ``num_classes``, or missing ImageNet weights.
        CheckpointError: unreadable cached ImageNet weights.
    """
    _check_num_classes(num_classes)  # before any weights are loaded
    return WSOLClassifier(build_encoder(backbone, pretrained=pretrained, width=width), num_classes)
