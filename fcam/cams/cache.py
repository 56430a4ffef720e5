"""CAM caching: low-resolution CAMs of a frozen classifier, computed once per split.

The decoder stage reads the train split's cache instead of running the classifier's backward
pass at every iteration, and the baseline evaluation reads the test split's cache. One job
caches every split it is asked for (the pipeline: train and test) with one model load and one
tracked run, because on a CPU a job's start-up (imports, MLflow) costs more than its CAMs.

A cache file (``<out_dir>/<split>.pt``) is a dict (loadable with ``weights_only=True``):
``image_ids`` (list of N str, the split's order), ``cams`` (N, h, w) float16 in [0, 1] (min-max
normalised at the target layer's resolution), ``logits`` (N, K) float32 of the clean forward,
``labels`` (N,) int64, ``size`` (the square input size the CAMs were computed at), ``method``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from fcam.cams import compute_cams
from fcam.constants import DATASET_KINDS
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import SplitMetadata, read_split
from fcam.errors import CheckpointError, ConfigError, DataError
from fcam.io import load_checkpoint, save_checkpoint
from fcam.runtime import resolve_device, seed_everything
from fcam.tracking import tracked_run

if TYPE_CHECKING:
    from fcam.models.classifier import WSOLClassifier

__all__ = ["CamCacheConfig", "cache_cams", "load_cam_cache", "load_classifier"]


@dataclass(frozen=True)
class CamCacheConfig:
    """One cache job: a classifier checkpoint, the splits to cache and the input sizes.

    The cache of split ``s`` is written to ``out_dir / f"{s}.pt"``.
    """

    ds: str
    backbone: str
    method: str
    splits: tuple[str, ...]
    checkpoint: Path
    dataset_root: Path
    metadata_root: Path
    out_dir: Path
    resize_size: int
    crop_size: int
    batch_size: int = 32
    cam_reference: bool = False
    seed: int = 0
    device: str = "auto"
    preset: str = "default"


def load_classifier(path: Path, device: torch.device) -> WSOLClassifier:
    """Rebuild a classifier from a checkpoint written by phase 1 (frozen, eval mode)."""
    # Imported here: models pull in torchvision (~1.3 s of CPU per job), which the baseline
    # evaluation, a reader of this module's caches, does not need.
    from fcam.models import build_classifier

    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.get("kind") != "classifier":
        raise CheckpointError(f"{path}: not a classifier checkpoint (kind={ckpt.get('kind')!r})")
    model = build_classifier(ckpt["backbone"], ckpt["num_classes"], pretrained="none")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit a {ckpt['backbone']} classifier: {exc}") from exc
    return model.to(device).eval().requires_grad_(False)


def _read_split(cfg: CamCacheConfig, split: str) -> SplitMetadata:
    kind = DATASET_KINDS[cfg.ds] if split != "train" else None  # train: labels only on mask datasets
    return read_split(cfg.metadata_root / split, cfg.dataset_root, kind=kind)


def _cache_split(
    cfg: CamCacheConfig, model: WSOLClassifier, split: str, meta: SplitMetadata, device: torch.device
) -> tuple[Path, float]:
    """Compute and write the cache of one split; returns its path and the classifier's top-1 (%)."""
    size = cfg.resize_size if split == "train" else cfg.crop_size
    loader = DataLoader(
        WSOLDataset(meta, train=False, resize_size=size, crop_size=size),
        batch_size=cfg.batch_size,
        shuffle=False,
    )
    # One noise stream per split (Smooth-Grad-CAM++), so a split's cache does not depend on
    # which other splits the job caches.
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    cams, logits, labels = [], [], []
    for batch in tqdm(loader, desc=f"cams {split}", leave=False, mininterval=10):
        images, y = batch["image"].to(device), batch["label"].to(device)
        c, lg = compute_cams(
            model, images, y, cfg.method, reference=cfg.cam_reference, generator=generator, return_logits=True
        )
        cams.append(c.detach().to(torch.float16).cpu())
        logits.append(lg.detach().float().cpu())
        labels.append(y.cpu())
    logits_all, labels_all = torch.cat(logits), torch.cat(labels)
    out = cfg.out_dir / f"{split}.pt"
    save_checkpoint(
        {
            "image_ids": list(meta.image_ids),
            "cams": torch.cat(cams),
            "logits": logits_all,
            "labels": labels_all,
            "size": size,
            "method": cfg.method,
        },
        out,
    )
    return out, 100.0 * float((logits_all.argmax(1) == labels_all).float().mean())


def cache_cams(cfg: CamCacheConfig) -> list[Path]:
    """Compute and store the CAMs of the ground-truth class for every image of each split.

    Images are resized without crop: the train split to ``resize_size``, so that the training
    dataset can upsample the CAM to that size and crop and flip it with the image; the other
    splits to ``crop_size``, the evaluation input size.

    Returns:
        The cache files, in the order of ``cfg.splits``.
    """
    if not cfg.splits or len(set(cfg.splits)) != len(cfg.splits):
        raise ConfigError(f"cache-cams: splits must be distinct and at least one, got {list(cfg.splits)}")
    metas = {split: _read_split(cfg, split) for split in cfg.splits}  # bad metadata fails before any work
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model = load_classifier(cfg.checkpoint, device)
    tags = {"ds": cfg.ds, "backbone": cfg.backbone, "method": cfg.method, "preset": cfg.preset}
    outs = []
    with tracked_run("cams", tags=tags, params=cfg) as run:
        for split in cfg.splits:
            out, top1 = _cache_split(cfg, model, split, metas[split], device)
            run.log_metrics({f"classification_top1_{split}": top1})
            outs.append(out)
    return outs


def load_cam_cache(path: Path, image_ids: tuple[str, ...]) -> dict:
    """Read a cache and check it belongs to the split with these image ids, in this order.

    Raises:
        DataError: the cache was made for another split or an older metadata version.
    """
    cache = load_checkpoint(path)
    if list(cache.get("image_ids", [])) != list(image_ids):
        raise DataError(f"{path}: cached CAMs do not match the split's image ids; rerun the cams stage")
    return cache
