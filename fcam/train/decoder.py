"""Phase 2: train the F-CAM decoder on the frozen classifier (method.md §2, §4, §5).

Each iteration: seeds are sampled from the cached CAM of the image (following its crop and flip),
the decoder's two-channel output is scored by the weighted sum of the loss terms (partial
cross-entropy on the seeds, dense CRF, absolute size), and only the decoder learns. The best epoch
is selected by validation localisation of the foreground map; the last is kept too (method.md §2:
test numbers for both). One decoder per point of the validation search (n-, alpha); the loss
ablation retrains the decoder of the chosen point with a subset of the terms. The loop itself
(resume, selection, finishing) is :mod:`fcam.train.loop`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from fcam.cams.cache import load_cam_cache
from fcam.constants import DATASET_KINDS
from fcam.data.datasets import WSOLDataset, make_loader
from fcam.data.metadata import read_split
from fcam.errors import CheckpointError, ConfigError
from fcam.evaluate.scoring import score_maps, validation_step
from fcam.io import load_json
from fcam.losses import BarrierSchedule, FCAMLoss, LossTerm, sample_seeds, seed_regions
from fcam.models import FCAM, build_decoder
from fcam.models.checkpoints import decoder_checkpoint, load_classifier
from fcam.pipeline.sections import DecoderParams, ImageSizes, SearchGrid, SeedParams, SettingParams
from fcam.pipeline.stages import JobSpec
from fcam.pipeline.typed import from_mapping
from fcam.runtime import resolve_device, seed_everything
from fcam.train.loop import finish, fit, job_fingerprint, prepare_outputs

__all__ = ["AblationJob", "DecoderJob", "DecoderPhase", "decoder_step", "loss_terms", "run", "run_ablation"]

log = logging.getLogger(__name__)

#: The selection key of phase 2 (one decoder, one score).
KEY = "localisation"


@dataclass(frozen=True)
class DecoderJob:
    """The parameters a decoder job reads."""

    decoder: DecoderParams
    images: ImageSizes
    val_step: float
    setting: SettingParams


@dataclass(frozen=True)
class AblationJob:
    """The parameters an ablation decoder job reads (its setting is the search's choice)."""

    decoder: DecoderParams
    images: ImageSizes
    val_step: float
    search: SearchGrid
    terms: tuple[str, ...]


def loss_terms(
    decoder: DecoderParams, setting: SettingParams, names: Sequence[str] = ("pce", "crf", "size")
) -> tuple[LossTerm, ...]:
    """The decoder's loss terms: PCE weighted by the setting's alpha, CRF and size by their weights.

    Args:
        names: the terms to keep (the ablation drops some); a term of weight 0 is dropped too.
    """
    loss = decoder.loss
    terms = (
        LossTerm("pce", setting.pce_weight, loss.pce.start_epoch, loss.pce.end_epoch),
        LossTerm("crf", loss.crf.weight, loss.crf.start_epoch, loss.crf.end_epoch),
        LossTerm("size", loss.size.weight, loss.size.start_epoch, loss.size.end_epoch),
    )
    return tuple(t for t in terms if t.name in names and t.weight > 0)


def decoder_step(
    model: FCAM,
    optimizer: torch.optim.Optimizer,
    criterion: FCAMLoss,
    images: torch.Tensor,
    raw: torch.Tensor,
    cams: torch.Tensor,
    seeds: SeedParams,
    *,
    bg_fraction: float,
    epoch: int,
    t: float,
    generator: torch.Generator,
) -> tuple[float, dict[str, float]]:
    """One SGD step of the decoder: seeds from the CAMs, the loss, backward, update.

    Args:
        model: the F-CAM model (frozen classifier + decoder), in train mode.
        optimizer: over the decoder's parameters.
        criterion: the weighted loss terms.
        images: (B, 3, H, W) normalised crops; raw: (B, 3, H, W) the same crops in [0, 255].
        cams: (B, H, W) the cached CAMs, cropped and flipped with the images, in [0, 1].
        seeds: how many seed pixels to draw and how to shape the regions.
        bg_fraction: n-, the fraction of lowest-CAM pixels forming the background region.
        epoch: 0-based epoch (terms may switch on or off by epoch).
        t: the size term's log-barrier parameter.
        generator: draws the seeds, on the images' device.

    Returns:
        The total loss and each active term's unweighted value.
    """
    fg_region, bg_region = seed_regions(
        cams, bg_fraction=bg_fraction, erosion=seeds.erosion, bg_ties=seeds.bg_ties
    )
    seed_map = sample_seeds(
        fg_region, bg_region, n_fg=seeds.n_fg, n_bg=seeds.n_bg, dilation=seeds.dilation, generator=generator
    )
    loss, terms = criterion(model(images), seed_map, raw, epoch=epoch, t=t)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), terms


class DecoderPhase:
    """Phase 2 as a :class:`fcam.train.loop.Phase`.

    Args:
        decoder: the decoder's parameters; images: the input sizes; val_step: validation's box step.
        setting: the search point (n-, alpha); terms: the loss terms to train with.
        ds, method: what the decoder localises; classifier: its frozen classifier's checkpoint.
        cams: the train split's CAM cache; dataset_root, metadata_root: the dataset.
        seed: the training seed; device: where to train.
    """

    def __init__(
        self,
        decoder: DecoderParams,
        images: ImageSizes,
        val_step: float,
        setting: SettingParams,
        terms: tuple[LossTerm, ...],
        *,
        ds: str,
        method: str,
        classifier: Path,
        cams: Path,
        dataset_root: Path,
        metadata_root: Path,
        seed: int,
        device: torch.device,
        workers: int = 0,
    ) -> None:
        self.params, self.images, self.setting, self.device = decoder, images, setting, device
        self.workers = workers
        self.ds, self.method, self.classifier_path = ds, method, classifier
        self.kind = DATASET_KINDS[ds]
        self.val_step = validation_step(self.kind, val_step)
        # The train split carries labels only on mask datasets (like OpenImages).
        train_meta = read_split(metadata_root / "train", dataset_root)
        self.val_meta = read_split(metadata_root / "val", dataset_root, kind=self.kind)
        cache = load_cam_cache(cams, train_meta.image_ids)
        if cache["size"] != images.resize_size:
            raise CheckpointError(
                f"{cams}: CAMs cached at {cache['size']} px, training resizes to {images.resize_size}"
            )
        self.train_set = WSOLDataset(
            train_meta,
            train=True,
            resize_size=images.resize_size,
            crop_size=images.crop_size,
            cams=cache["cams"].float(),
            seed=seed,
        )
        self.val_loader = make_loader(
            WSOLDataset(
                self.val_meta, train=False, resize_size=images.resize_size, crop_size=images.crop_size
            ),
            batch_size=decoder.batch_size,
            workers=workers,
        )
        frozen = load_classifier(classifier, device)
        decoder_net = build_decoder(frozen.backbone, frozen.encoder.out_channels, frozen.width)
        self.model = FCAM(frozen, decoder_net).to(device)
        self.optimizer = torch.optim.SGD(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=decoder.lr,
            momentum=decoder.momentum,
            nesterov=decoder.nesterov,
            weight_decay=decoder.weight_decay,
        )
        crf = decoder.loss.crf
        self.criterion = FCAMLoss(
            terms, crf_sigma_rgb=crf.sigma_rgb, crf_sigma_xy=crf.sigma_xy, crf_scale=crf.scale
        )
        b = decoder.barrier
        self.barrier = BarrierSchedule(t0=b.t0, factor=b.factor, t_max=b.t_max)
        self.loader_rng = torch.Generator().manual_seed(seed)
        self.seed_rng = torch.Generator(device=device).manual_seed(seed + 1)
        self.last_score = float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {
            "decoder": self.model.decoder.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "barrier": self.barrier.state_dict(),
            "loader_rng": self.loader_rng.get_state(),
            "seed_rng": self.seed_rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.decoder.load_state_dict(state["decoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.barrier.load_state_dict(state["barrier"])
        self.loader_rng.set_state(state["loader_rng"])
        self.seed_rng.set_state(state["seed_rng"])

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_set.set_epoch(epoch)
        loader = make_loader(
            self.train_set,
            batch_size=self.params.batch_size,
            workers=self.workers,
            shuffle=True,
            generator=self.loader_rng,
            drop_last=True,
        )
        self.model.train()
        sums: dict[str, float] = {}
        steps = 0
        t = self.barrier.t
        for batch in tqdm(
            loader, desc=f"decoder epoch {epoch}/{self.params.epochs}", leave=False, mininterval=10
        ):
            loss, terms = decoder_step(
                self.model,
                self.optimizer,
                self.criterion,
                batch["image"].to(self.device),
                batch["raw"].to(self.device),
                batch["cam"].to(self.device),
                self.params.seeds,
                bg_fraction=self.setting.bg_fraction,
                epoch=epoch - 1,
                t=t,
                generator=self.seed_rng,
            )
            for name, value in {"loss": loss, **terms}.items():
                sums[name] = sums.get(name, 0.0) + value
            steps += 1
        self.barrier.step()
        return {"t": t, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()}}

    def validate(self) -> dict[str, float]:
        def batches():
            with torch.no_grad():
                for batch in self.val_loader:
                    yield batch["index"], self.model.foreground(batch["image"].to(self.device)).cpu(), None

        self.model.eval()
        self.last_score = score_maps(
            batches(), self.val_meta, self.kind, step=self.val_step
        ).value
        return {KEY: self.last_score}

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return decoder_checkpoint(
            self.model,
            classifier=self.classifier_path,
            epoch=epoch,
            score=self.last_score,
            ds=self.ds,
            method=self.method,
            resize_size=self.images.resize_size,
            crop_size=self.images.crop_size,
            setting=dataclasses.asdict(self.setting),
        )


def _train(
    spec: JobSpec,
    tracker: Any,
    params: DecoderParams,
    images: ImageSizes,
    val_step: float,
    setting: SettingParams,
    terms: tuple[LossTerm, ...],
) -> None:
    best, last, history = spec.path("best"), spec.path("last"), spec.path("history")
    prepare_outputs([best, last, history])
    device = resolve_device(spec.device)
    seed_everything(spec.seed)
    phase = DecoderPhase(
        params,
        images,
        val_step,
        setting,
        terms,
        ds=spec.wildcards["ds"],
        method=spec.wildcards["method"],
        classifier=spec.path("classifier"),
        cams=spec.path("cams"),
        dataset_root=spec.path("root"),
        metadata_root=spec.path("meta"),
        seed=spec.seed,
        device=device,
        workers=spec.workers,
    )
    fingerprint = job_fingerprint(
        spec.config,
        inputs=[spec.path(k) for k in ("root", "meta", "classifier", "cams")],
        code=spec.code,
        extra={
            "setting": setting.name,
            "terms": [t.name for t in terms],
            "seed": spec.seed,
            "stage": spec.name,
        },
    )
    work = history.parent / ".work"
    result = fit(phase, keys=(KEY,), epochs=params.epochs, work=work, fingerprint=fingerprint, run=tracker)
    summary = {"setting": dataclasses.asdict(setting)}
    finish(work, result, best={best: KEY}, last=last, history=history, summary=summary)
    tracker.log_metrics({"best_val_localisation": result.best[KEY]})
    tracker.log_artifact(history)


def run(spec: JobSpec, tracker: Any) -> None:
    """The ``decoder`` stage: train the decoder of one search setting."""
    job = from_mapping(DecoderJob, spec.config)
    _train(
        spec,
        tracker,
        job.decoder,
        job.images,
        job.val_step,
        job.setting,
        loss_terms(job.decoder, job.setting),
    )


def run_ablation(spec: JobSpec, tracker: Any) -> None:
    """The ``ablation_decoder`` stage: the chosen setting's decoder, with a subset of the loss terms."""
    job = from_mapping(AblationJob, spec.config)
    if "choice" in spec.inputs:
        chosen = load_json(spec.path("choice"))["setting"]
        setting = from_mapping(SettingParams, chosen, where=str(spec.path("choice")))
    elif len(job.search.bg_fraction) == 1 and len(job.search.pce_weight) == 1:
        from fcam.pipeline.params import Setting

        point = Setting(job.search.bg_fraction[0], job.search.pce_weight[0])
        setting = from_mapping(SettingParams, point.as_dict())
    else:
        raise ConfigError(f"{spec.name}: the search has several points but no choice.json input")
    _train(
        spec,
        tracker,
        job.decoder,
        job.images,
        job.val_step,
        setting,
        loss_terms(job.decoder, setting, job.terms),
    )
