"""CAM caching: low-resolution CAMs of a frozen classifier, computed once per split.

The decoder stage reads the train split's cache instead of running the classifier's backward
pass at every iteration, and the baseline evaluation reads the test split's cache. One job
caches both splits with one model load and one tracked run, because on a CPU a job's start-up
(imports, MLflow) costs more than its CAMs.

A cache file (``<split>.pt``) is a dict (loadable with ``weights_only=True``):
``image_ids`` (list of N str, the split's order), ``cams`` (N, h, w) float16 in [0, 1] (min-max
normalised at the target layer's resolution), ``logits`` (N, K) float32 of the clean forward,
``labels`` (N,) int64, ``size`` (the square input size the CAMs were computed at), ``method``.

A job caches a *computed* method (:mod:`fcam.cam_twins`) and serves its twins too: on the first
batch it also computes the twins and checks that their maps are the computed method's, so that a
classifier that breaks the twins' premise (a GAP + linear head over ReLU features) fails the job
instead of giving its twins wrong rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from fcam.cam_twins import twins_of
from fcam.cams import compute_cams, compute_cams_multi
from fcam.constants import CAM_METHODS, DATASET_KINDS
from fcam.data.datasets import WSOLDataset, make_loader
from fcam.data.metadata import SplitMetadata, read_split
from fcam.errors import DataError, FcamError
from fcam.io import load_checkpoint, remove_stale_temporaries, save_checkpoint
from fcam.pipeline.sections import CamParams, ImageSizes
from fcam.pipeline.stages import JobSpec
from fcam.pipeline.typed import from_mapping
from fcam.runtime import resolve_device, seed_everything

if TYPE_CHECKING:
    from fcam.models.classifier import WSOLClassifier

__all__ = ["CamJob", "cache_split", "check_twins", "load_cam_cache", "run"]

#: Largest |difference| allowed between a twin's maps and its computed method's (maps are in
#: [0, 1] and cached as float16, whose step near 1 is 5e-4; measured differences are ~1e-6).
TWIN_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CamJob:
    """The parameters a CAM cache job reads."""

    images: ImageSizes
    cams: CamParams


def _read_split(metadata_root: Path, dataset_root: Path, ds: str, split: str) -> SplitMetadata:
    kind = DATASET_KINDS[ds] if split != "train" else None  # train: labels only on mask datasets
    return read_split(metadata_root / split, dataset_root, kind=kind)


def cache_split(
    model: WSOLClassifier,
    meta: SplitMetadata,
    out: Path,
    *,
    method: str,
    size: int,
    batch_size: int,
    reference: bool,
    seed: int,
    device: torch.device,
    workers: int = 0,
) -> float:
    """Compute and write the cache of one split (images resized to ``size`` x ``size``, no crop).

    Returns:
        The classifier's top-1 accuracy on the split (percent).
    """
    dataset = WSOLDataset(meta, train=False, resize_size=size, crop_size=size)
    loader = make_loader(dataset, batch_size=batch_size, workers=workers)
    # One noise stream per split (Smooth-Grad-CAM++), so a split's cache does not depend on
    # which other splits the job caches.
    generator = torch.Generator(device=device).manual_seed(seed)
    twins = twins_of(method, CAM_METHODS, reference)
    cams, logits, labels = [], [], []
    for batch in tqdm(loader, desc=f"cams {out.stem}", leave=False, mininterval=10):
        images, y = batch["image"].to(device), batch["label"].to(device)
        if twins and not cams:
            # The computed method's maps are compute_cams's (the twins' noise comes after it).
            maps, lg = compute_cams_multi(
                model, images, y, [method, *twins], reference=reference, generator=generator
            )
            check_twins(maps, method, what=f"{out}: first batch")
            c = maps[method]
        else:
            c, lg = compute_cams(
                model, images, y, method, reference=reference, generator=generator, return_logits=True
            )
        cams.append(c.detach().to(torch.float16).cpu())
        logits.append(lg.detach().float().cpu())
        labels.append(y.cpu())
    logits_all, labels_all = torch.cat(logits), torch.cat(labels)
    save_checkpoint(
        {
            "image_ids": list(meta.image_ids),
            "cams": torch.cat(cams),
            "logits": logits_all,
            "labels": labels_all,
            "size": size,
            "method": method,
        },
        out,
    )
    return 100.0 * float((logits_all.argmax(1) == labels_all).float().mean())


def check_twins(maps: dict[str, torch.Tensor], method: str, *, what: str) -> None:
    """Check that every twin's maps equal ``method``'s within :data:`TWIN_TOLERANCE`.

    Args:
        maps: method -> (B, h, w) maps of one batch, ``method`` and its twins.
        method: the computed method.
        what: where the maps come from, for the error message.

    Raises:
        FcamError: a twin differs; the message names it and the largest difference.
    """
    for twin, twin_maps in maps.items():
        gap = float((twin_maps - maps[method]).abs().max())
        if gap > TWIN_TOLERANCE:
            raise FcamError(
                f"{what}: {twin} differs from {method} by up to {gap:.3g} (> {TWIN_TOLERANCE}), so they "
                "are not twins for this classifier; fcam.cam_twins assumes a GAP + linear head over "
                "ReLU features"
            )


def run(spec: JobSpec, tracker: Any) -> None:
    """The ``cams`` stage: cache the CAMs of the train split (at the training resize size, to be
    cropped and flipped with the image) and of the test split (at the evaluation size)."""
    job = from_mapping(CamJob, spec.config)
    ds = spec.wildcards["ds"]
    sizes = {"train": job.images.resize_size, "test": job.images.crop_size}
    remove_stale_temporaries(spec.path(split) for split in sizes)
    # Bad metadata fails before any work.
    metas = {split: _read_split(spec.path("meta"), spec.path("root"), ds, split) for split in sizes}
    device = resolve_device(spec.device)
    seed_everything(spec.seed)
    from fcam.models.checkpoints import load_classifier

    model = load_classifier(spec.path("classifier"), device)
    for split, size in sizes.items():
        top1 = cache_split(
            model,
            metas[split],
            spec.path(split),
            method=spec.wildcards["method"],
            size=size,
            batch_size=job.cams.batch_size,
            reference=job.cams.reference,
            seed=spec.seed,
            device=device,
            workers=spec.workers,
        )
        tracker.log_metrics({f"classification_top1_{split}": top1})


def load_cam_cache(path: Path, image_ids: tuple[str, ...]) -> dict:
    """Read a cache and check it belongs to the split with these image ids, in this order.

    Raises:
        DataError: the cache was made for another split or an older metadata version.
    """
    cache = load_checkpoint(path)
    if list(cache.get("image_ids", [])) != list(image_ids):
        raise DataError(f"{path}: cached CAMs do not match the split's image ids; rerun the cams stage")
    return cache
