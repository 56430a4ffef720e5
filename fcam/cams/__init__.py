"""Class activation maps (CAMs) of a whole batch at once, one class per method (torch-cam style).

:func:`compute_cams` is the entry point; :mod:`fcam.cams.core` explains the shared machinery
(hooks, eval mode, one backward per batch, min-max normalisation) and each class gives its
paper and formula.
"""

from fcam.cams.activation import CAM, linear_head
from fcam.cams.compute import METHOD_CLASSES, compute_cams
from fcam.cams.core import BaseCAM, minmax_normalize
from fcam.cams.gradient import GradCAM, GradCAMpp, LayerCAM, SmoothGradCAMpp, XGradCAM

__all__ = [
    "CAM",
    "METHOD_CLASSES",
    "BaseCAM",
    "GradCAM",
    "GradCAMpp",
    "LayerCAM",
    "SmoothGradCAMpp",
    "XGradCAM",
    "compute_cams",
    "linear_head",
    "minmax_normalize",
]
