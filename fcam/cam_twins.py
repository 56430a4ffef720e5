"""Twin CAM methods: methods that are the same computation on fcam's classifiers, computed once.

(Outside :mod:`fcam.cams` so that the pipeline can plan jobs without importing torch.)

Every fcam classifier ends in global average pooling and one linear layer over the target layer
(a GAP + linear head, ``logits = w @ GAP(A) + b``), and the target layer follows a ReLU (A >= 0).
Then the gradient of the class logit Y = logits[y] is the same at every position and for every
input, ``g = dY/dA = w[y] / (h w)``, and (notation of :mod:`fcam.cams.core`):

- Grad-CAM's weight ``mean_ij g = w[y] / (h w)`` is CAM's ``w[y]`` times a positive constant,
  which the ReLU keeps and the min-max removes;
- XGrad-CAM's weight ``sum_ij A g / sum_ij A`` is ``w[y] / (h w)`` as well (a channel whose sum
  is 0 is all 0, as A >= 0, and adds nothing either way);
- textbook Smooth-Grad-CAM++ averages g, g^2, g^3 over noisy inputs, which do not change g, and
  combines the clean A: Grad-CAM++'s formula.

So CAM = Grad-CAM = XGrad-CAM and Grad-CAM++ = Smooth-Grad-CAM++, up to float rounding
(tests/unit/cams/test_cams_fcam_models.py checks it on every backbone). With ``cams.reference`` (the
authors' variants, docs/method.md §8) CAM* drops the ReLU and Smooth-Grad-CAM++* takes the last
noisy pass's activation, so only Grad-CAM = XGrad-CAM remain twins.

The pipeline computes each group once: the classifier validates, the CAM cache and the F-CAM
decoder are made for the group's first method (its *computed* method), and every method keeps
its own evaluation and table row, read from the computed method's CAMs and decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fcam.constants import CAM_METHODS

__all__ = ["computed_as", "computed_methods", "twins_of"]

#: reference flag -> {twin: the method whose computation serves it}.
_TWINS: Final[dict[bool, dict[str, str]]] = {
    False: {"gradcam": "cam", "xgradcam": "cam", "smoothgradcampp": "gradcampp"},
    True: {"xgradcam": "gradcam"},
}


def computed_as(method: str, reference: bool) -> str:
    """The method whose maps ``method``'s are (itself unless it is a twin).

    Raises:
        ValueError: ``method`` is not one of :data:`fcam.constants.CAM_METHODS`.
    """
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; expected one of {', '.join(CAM_METHODS)}")
    return _TWINS[bool(reference)].get(method, method)


def computed_methods(methods: Sequence[str], reference: bool) -> list[str]:
    """The distinct methods computed to serve ``methods``, in the order they first serve one.

    Example:
        >>> computed_methods(["gradcam", "layercam", "cam"], reference=False)
        ['cam', 'layercam']
    """
    return list(dict.fromkeys(computed_as(m, reference) for m in methods))


def twins_of(method: str, methods: Sequence[str], reference: bool) -> list[str]:
    """The methods of ``methods`` other than ``method`` that ``method``'s computation serves."""
    return [m for m in methods if m != method and computed_as(m, reference) == method]
