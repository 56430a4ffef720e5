"""The decoder's training signal (docs/method.md §5): seeds from the CAM, partial cross-entropy,
dense CRF loss and absolute size log-barrier, combined by :class:`FCAMLoss`.

All functions are pure: tensors in, tensors out, on the device of their inputs.
"""

from fcam.losses.crf import (
    PAPER_CRF_WEIGHT,
    PAPER_CRF_WEIGHT_EXACT,
    REFERENCE_LATTICE_FACTOR,
    DenseCRFLoss,
    bilateral_filter,
    dense_crf_loss,
)
from fcam.losses.pce import partial_cross_entropy
from fcam.losses.permutohedral import PermutohedralLattice
from fcam.losses.seeds import BG_TIES, IGNORE, otsu_thresholds, sample_seeds, seed_regions
from fcam.losses.size import BarrierSchedule, absolute_size_loss, extended_log_barrier
from fcam.losses.total import REFERENCE_TERMS, TERM_NAMES, FCAMLoss, LossTerm

__all__ = [
    "BG_TIES",
    "IGNORE",
    "PAPER_CRF_WEIGHT",
    "PAPER_CRF_WEIGHT_EXACT",
    "REFERENCE_LATTICE_FACTOR",
    "REFERENCE_TERMS",
    "TERM_NAMES",
    "BarrierSchedule",
    "DenseCRFLoss",
    "FCAMLoss",
    "LossTerm",
    "PermutohedralLattice",
    "absolute_size_loss",
    "bilateral_filter",
    "dense_crf_loss",
    "extended_log_barrier",
    "otsu_thresholds",
    "partial_cross_entropy",
    "sample_seeds",
    "seed_regions",
]
