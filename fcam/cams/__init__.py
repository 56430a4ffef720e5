"""Class activation maps (CAMs) of a whole batch at once, one class per method (torch-cam style).

:func:`compute_cams` is the entry point, :func:`compute_cams_multi` its variant for several
methods sharing one clean pass; :mod:`fcam.cams.core` explains the shared machinery (hooks, eval
mode, one backward per batch, min-max normalisation) and each class gives its paper and formula.
"""

from fcam.cams.activation import CAM, linear_head
from fcam.cams.compute import METHOD_CLASSES, compute_cams, compute_cams_multi
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
    "compute_cams_multi",
    "linear_head",
    "minmax_normalize",
]
