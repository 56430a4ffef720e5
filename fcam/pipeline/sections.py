"""Typed views of the parameter sections, as jobs receive them (after per-dataset and per-backbone
overrides). Each class mirrors one section of ``fcam/pipeline/params.schema.yaml`` field for key,
and :func:`fcam.pipeline.typed.from_mapping` refuses any mismatch, so adding a knob means adding it
to the parameter files, the schema and one field here. The meaning of each key is in the schema.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BarrierParams",
    "CamParams",
    "ClassifierParams",
    "CrfParams",
    "DecoderParams",
    "ImageSizes",
    "LossParams",
    "SearchGrid",
    "SeedParams",
    "SettingParams",
    "SizeParams",
    "SynthParams",
    "TermWindow",
]


@dataclass(frozen=True)
class ImageSizes:
    """``images``: training resize then random crop; evaluation at ``crop_size``."""

    resize_size: int
    crop_size: int


@dataclass(frozen=True)
class ClassifierParams:
    """``classifier``: phase 1."""

    per_method: bool
    pretrained: str
    width: float
    epochs: int
    lr: float
    batch_size: int
    momentum: float
    nesterov: bool
    weight_decay: float
    step_size: int
    gamma: float


@dataclass(frozen=True)
class CamParams:
    """``cams``: the CAM cache."""

    reference: bool
    batch_size: int


@dataclass(frozen=True)
class SeedParams:
    """``decoder.seeds``: pixels sampled from the CAM's foreground and background regions."""

    n_fg: int
    n_bg: int
    bg_ties: str
    erosion: int
    dilation: int


@dataclass(frozen=True)
class TermWindow:
    """``decoder.loss.pce``: the epochs the term is on (its weight is searched: ``search``)."""

    start_epoch: int
    end_epoch: int | None


@dataclass(frozen=True)
class CrfParams:
    """``decoder.loss.crf``: the dense CRF loss."""

    weight: float
    start_epoch: int
    end_epoch: int | None
    sigma_rgb: float
    sigma_xy: float
    scale: float


@dataclass(frozen=True)
class SizeParams:
    """``decoder.loss.size``: the absolute size constraint."""

    weight: float
    start_epoch: int
    end_epoch: int | None


@dataclass(frozen=True)
class LossParams:
    """``decoder.loss``."""

    pce: TermWindow
    crf: CrfParams
    size: SizeParams


@dataclass(frozen=True)
class BarrierParams:
    """``decoder.barrier``: the log-barrier's t schedule."""

    t0: float
    factor: float
    t_max: float


@dataclass(frozen=True)
class DecoderParams:
    """``decoder``: phase 2."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    seeds: SeedParams
    loss: LossParams
    barrier: BarrierParams


@dataclass(frozen=True)
class SettingParams:
    """One point of the search grid (:class:`fcam.pipeline.params.Setting`)."""

    name: str
    bg_fraction: float
    pce_weight: float


@dataclass(frozen=True)
class SearchGrid:
    """``search``: the grid of the decoder's validation search."""

    bg_fraction: tuple[float, ...]
    pce_weight: tuple[float, ...]


@dataclass(frozen=True)
class SynthParams:
    """``synth.<ds>``: the synthetic benchmark's generator."""

    classes: int
    size: int
    train: int
    val: int
    test: int
    seed: int
