"""CAM caching: low-resolution CAMs of a frozen classifier for one split, computed once.

The decoder stage reads the train split's cache instead of running the classifier's backward
pass at every iteration, and the baseline evaluation reads the test split's cache.

A cache file is a dict (loadable with ``weights_only=True``):
``image_ids`` (list of N str, the split's order), ``cams`` (N, h, w) float16 in [0, 1] (min-max
normalised at the target layer's resolution), ``logits`` (N, K) float32 of the clean forward,
``labels`` (N,) int64, ``size`` (the square input size the CAMs were computed at), ``method``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from fcam.cams import compute_cams
from fcam.constants import DATASET_KINDS
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.errors import CheckpointError, DataError
from fcam.io import load_checkpoint, save_checkpoint
from fcam.models import build_classifier
from fcam.models.classifier import WSOLClassifier
from fcam.runtime import resolve_device, seed_everything
from fcam.tracking import tracked_run

__all__ = ["CamCacheConfig", "cache_cams", "load_cam_cache", "load_classifier"]


@dataclass(frozen=True)
class CamCacheConfig:
    """One cache job: a classifier checkpoint, a split and the input size."""

    ds: str
    backbone: str
    method: str
    split: str
    checkpoint: Path
    dataset_root: Path
    metadata_root: Path
    out: Path
    resize_size: int
    crop_size: int
    batch_size: int = 32
    cam_reference: bool = False
    seed: int = 0
    device: str = "auto"
    preset: str = "default"


def load_classifier(path: Path, device: torch.device) -> WSOLClassifier:
    """Rebuild a classifier from a checkpoint written by phase 1 (frozen, eval mode)."""
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.get("kind") != "classifier":
        raise CheckpointError(f"{path}: not a classifier checkpoint (kind={ckpt.get('kind')!r})")
    model = build_classifier(ckpt["backbone"], ckpt["num_classes"], pretrained="none")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit a {ckpt['backbone']} classifier: {exc}") from exc
    return model.to(device).eval().requires_grad_(False)


def cache_cams(cfg: CamCacheConfig) -> Path:
    """Compute and store the CAMs of the ground-truth class for every image of a split.

    Images are resized without crop: the train split to ``resize_size``, so that the training
    dataset can upsample the CAM to that size and crop and flip it with the image; the other
    splits to ``crop_size``, the evaluation input size.
    """
    size = cfg.resize_size if cfg.split == "train" else cfg.crop_size
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    kind = DATASET_KINDS[cfg.ds] if cfg.split != "train" else None  # train: labels only on mask datasets
    meta = read_split(cfg.metadata_root / cfg.split, cfg.dataset_root, kind=kind)
    model = load_classifier(cfg.checkpoint, device)
    loader = DataLoader(
        WSOLDataset(meta, train=False, resize_size=size, crop_size=size),
        batch_size=cfg.batch_size,
        shuffle=False,
    )
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    cams, logits, labels = [], [], []
    tags = {
        "ds": cfg.ds,
        "backbone": cfg.backbone,
        "method": cfg.method,
        "split": cfg.split,
        "preset": cfg.preset,
    }
    with tracked_run("cams", tags=tags, params=cfg) as run:
        for batch in tqdm(loader, desc=f"cams {cfg.split}", leave=False, mininterval=10):
            images, y = batch["image"].to(device), batch["label"].to(device)
            c, lg = compute_cams(
                model,
                images,
                y,
                cfg.method,
                reference=cfg.cam_reference,
                generator=generator,
                return_logits=True,
            )
            cams.append(c.detach().to(torch.float16).cpu())
            logits.append(lg.detach().float().cpu())
            labels.append(y.cpu())
        logits_all = torch.cat(logits)
        labels_all = torch.cat(labels)
        save_checkpoint(
            {
                "image_ids": list(meta.image_ids),
                "cams": torch.cat(cams),
                "logits": logits_all,
                "labels": labels_all,
                "size": size,
                "method": cfg.method,
            },
            cfg.out,
        )
        run.log_metrics(
            {"classification_top1": 100.0 * float((logits_all.argmax(1) == labels_all).float().mean())}
        )
    return cfg.out


def load_cam_cache(path: Path, image_ids: tuple[str, ...]) -> dict:
    """Read a cache and check it belongs to the split with these image ids, in this order.

    Raises:
        DataError: the cache was made for another split or an older metadata version.
    """
    cache = load_checkpoint(path)
    if list(cache.get("image_ids", [])) != list(image_ids):
        raise DataError(f"{path}: cached CAMs do not match the split's image ids; rerun the cams stage")
    return cache
