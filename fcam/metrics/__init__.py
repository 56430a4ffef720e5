"""WSOL localisation metrics (Choe et al., "Evaluating Weakly Supervised Object Localization
Methods Right", CVPR 2020; ``clovaai/wsolevaluation``), exact to the reference's arithmetic.

Box datasets: MaxBoxAcc (= GT-known Loc), MaxBoxAccV2, Top-1/Top-5 Loc; mask datasets: PxAP.
Maps are (N, 224, 224) floats in [0, 1], scored as float64; ground-truth boxes are inclusive
``x0, y0, x1, y1`` in 224-pixel coordinates. The evaluators stream batches; the functions are
thin wrappers over them. Pure numpy/OpenCV: no torch, no file access.
"""

from fcam.metrics.boxes import BoxEvaluator, BoxResult, max_box_acc, max_box_acc_v2, top_k_loc
from fcam.metrics.masks import MaskEvaluator, MaskResult, pxap
from fcam.metrics.protocol import box_iou, boxes_from_map, thresholds

__all__ = [
    "BoxEvaluator",
    "BoxResult",
    "MaskEvaluator",
    "MaskResult",
    "box_iou",
    "boxes_from_map",
    "max_box_acc",
    "max_box_acc_v2",
    "pxap",
    "thresholds",
    "top_k_loc",
]
