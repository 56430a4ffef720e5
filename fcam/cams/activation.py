"""CAM, the gradient-free method: the class's row of the linear head weights the feature map."""

from __future__ import annotations

from torch import Tensor, nn

from fcam.cams.core import BaseCAM

__all__ = ["CAM", "linear_head"]


def linear_head(model: nn.Module) -> nn.Linear:
    """The linear layer that follows global average pooling in a GAP + linear classifier.

    ``model.fc`` if it is an ``nn.Linear`` (fcam classifiers and torchvision ResNets), else the
    last ``nn.Linear`` of ``model.modules()`` (registration order, which puts the head last in
    ordinary classifiers).

    Raises:
        ValueError: ``model`` has no ``nn.Linear``.
    """
    head = getattr(model, "fc", None)
    if isinstance(head, nn.Linear):
        return head
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(
            f"CAM needs a linear head after global average pooling; {type(model).__name__} has no nn.Linear"
        )
    return linears[-1]


class CAM(BaseCAM):
    """Class Activation Map (Zhou et al., "Learning Deep Features for Discriminative Localization",
    CVPR 2016, https://arxiv.org/abs/1512.04150).

    For a classifier ``logits = w @ GAP(A) + b`` (global average pooling, then one linear layer
    ``w: (K, C)``), the map of class y is the same linear combination before pooling:

        M_b = sum_c w[y_b, c] * A[b, c]        cam_b = minmax(ReLU(M_b))

    The head is :func:`linear_head` (``model.fc`` if it is an ``nn.Linear``, else the model's last
    ``nn.Linear``); its ``in_features`` must equal the target layer's C. The bias is a constant
    and would vanish in the min-max anyway. One forward pass, no backward.

    ``reference=True`` (CAM* in docs/method.md §8): no ReLU before the min-max, as in the
    authors' code, so negative evidence stays in the map.

    Example:
        >>> model = torchvision.models.resnet18(weights=None)
        >>> cams = CAM(model, model.layer4)(images, labels)  # (B, h, w) float32 in [0, 1]
    """

    needs_gradient = False

    @property
    def relu(self) -> bool:
        """Textbook CAM applies a ReLU; the reference's CAM* does not."""
        return not self.reference

    def _weights(self, activation: Tensor, gradient: Tensor | None, labels: Tensor) -> Tensor:
        head = linear_head(self.model)
        channels = activation.shape[1]
        if head.in_features != channels:
            raise ValueError(
                f"CAM needs a GAP + linear head on the target layer: the head has in_features="
                f"{head.in_features} but the target layer outputs {channels} channels"
            )
        return head.weight.detach()[labels].to(activation.dtype)[:, :, None, None]
