"""Evaluate one (dataset, backbone, method, variant) on the test split.

``baseline`` scores the classifier's interpolated CAMs, read from the test split's CAM cache;
``fcam`` runs F-CAM (frozen classifier + decoder) and scores its foreground map, for the best
and the last decoder checkpoint (method.md §2). Outputs in ``out_dir``:

- ``metrics.json``: ``{ds, backbone, method, variant, kind, split, checkpoint, preset, num_images,
  metrics: {...}, metrics_last: {...} (fcam only)}``; box datasets' metrics are ``max_box_acc,
  max_box_acc_v2, top1_loc, top5_loc, gt_known_loc, classification_top1``, mask datasets'
  ``pxap, classification_top1`` (percent).
- ``curves.json``: the evaluator's curves over tau plus ``histogram`` (50 bins of map values
  over all test pixels: ``edges``, ``counts``, ``counts_fg``, ``counts_bg``; foreground = inside a
  ground-truth box or mask).
- ``samples.npz``: the first ``samples`` test images (the same ids for both variants):
  ``ids``, ``images`` (S, 224, 224, 3) uint8, ``maps`` (S, 224, 224) float32, ``best_tau``; box
  datasets add ``gt_boxes`` (S, Kmax, 4) int32 padded with -1 and ``pred_boxes`` (S, 4) int32
  (largest contour at best_tau); mask datasets add ``gt_masks`` and ``ignore`` (S, 224, 224) bool.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from fcam.cams.cache import load_cam_cache
from fcam.constants import DATASET_KINDS, EVAL_SIZE
from fcam.data.datasets import WSOLDataset
from fcam.data.images import read_image_rgb
from fcam.data.metadata import SplitMetadata, gt_boxes_at, load_gt_masks, read_split
from fcam.errors import ConfigError
from fcam.io import save_json, save_npz
from fcam.metrics import boxes_from_map
from fcam.runtime import resolve_device, seed_everything
from fcam.tracking import tracked_run
from fcam.train.localisation import LocalisationScore, score_maps

__all__ = ["EvaluateConfig", "evaluate"]

HIST_BINS = 50


@dataclass(frozen=True)
class EvaluateConfig:
    """One evaluation job."""

    ds: str
    backbone: str
    method: str
    variant: str
    dataset_root: Path
    metadata_root: Path
    out_dir: Path
    cams: Path | None = None
    classifier: Path | None = None
    decoder_best: Path | None = None
    decoder_last: Path | None = None
    split: str = "test"
    size: int = 224
    step: float = 0.001
    samples: int = 8
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    preset: str = "default"


class _MapStats:
    """Histograms of map values and the maps of the first few images, gathered while streaming."""

    def __init__(self, meta: SplitMetadata, kind: str, samples: int) -> None:
        self.meta, self.kind, self.samples = meta, kind, samples
        self.edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
        self.counts = np.zeros((2, HIST_BINS), np.int64)  # background, foreground
        self.sample_ids: list[str] = []
        self.sample_maps: list[np.ndarray] = []

    def __call__(self, maps: np.ndarray, ids: list[str]) -> None:
        if self.kind == "boxes":
            fg = np.zeros(maps.shape, bool)
            for n, image_id in enumerate(ids):
                for x0, y0, x1, y1 in gt_boxes_at(self.meta, image_id, size=EVAL_SIZE):
                    fg[n, y0 : y1 + 1, x0 : x1 + 1] = True
        else:
            fg = load_gt_masks(self.meta, ids, size=EVAL_SIZE)[0]
        bins = np.clip((maps * HIST_BINS).astype(np.int64), 0, HIST_BINS - 1)
        self.counts += np.stack(
            [np.bincount(bins[~fg], minlength=HIST_BINS), np.bincount(bins[fg], minlength=HIST_BINS)]
        )
        for n, image_id in enumerate(ids):
            if len(self.sample_ids) < self.samples:
                self.sample_ids.append(image_id)
                self.sample_maps.append(maps[n].astype(np.float32))

    def histogram(self) -> dict:
        return {
            "edges": self.edges.tolist(),
            "counts": self.counts.sum(0).tolist(),
            "counts_bg": self.counts[0].tolist(),
            "counts_fg": self.counts[1].tolist(),
        }


def _load_image(meta: SplitMetadata, image_id: str) -> np.ndarray:
    """(224, 224, 3) uint8 RGB of one image for the sample figures (DataError naming a bad file)."""
    rgb = read_image_rgb(meta.path(image_id))
    return cv2.resize(rgb, (EVAL_SIZE, EVAL_SIZE), interpolation=cv2.INTER_LINEAR)


def _best_tau(score: LocalisationScore, kind: str) -> float:
    """The threshold shown in figures: MaxBoxAcc's best tau, or for masks the one of best F1."""
    if kind == "boxes":
        return float(score.result.best_tau["max_box_acc"])
    curves = score.result.curves()
    p, r = np.asarray(curves["precision"]), np.asarray(curves["recall"])
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return float(np.asarray(curves["threshold"])[int(np.argmax(f1))])


def _samples(
    stats: _MapStats, meta: SplitMetadata, kind: str, score: LocalisationScore
) -> dict[str, np.ndarray]:
    ids = stats.sample_ids
    best_tau = _best_tau(score, kind)
    out: dict[str, np.ndarray] = {
        "ids": np.array(ids, dtype=str),
        "images": np.stack([_load_image(meta, i) for i in ids]).astype(np.uint8),
        "maps": np.stack(stats.sample_maps).astype(np.float32),
        "best_tau": np.float64(best_tau),
    }
    if kind == "boxes":
        gts = [gt_boxes_at(meta, i, size=EVAL_SIZE) for i in ids]
        kmax = max(len(g) for g in gts)
        padded = np.full((len(ids), kmax, 4), -1, np.int32)
        for n, g in enumerate(gts):
            padded[n, : len(g)] = g
        out["gt_boxes"] = padded
        out["pred_boxes"] = np.stack(
            [
                boxes_from_map(m.astype(np.float64), best_tau, multi_contour=False)[0]
                for m in stats.sample_maps
            ]
        ).astype(np.int32)
    else:
        masks, ignore = load_gt_masks(meta, ids, size=EVAL_SIZE)
        out["gt_masks"], out["ignore"] = masks, ignore
    return out


def _metrics(score: LocalisationScore, kind: str, top1: float) -> dict[str, float | None]:
    r = score.result
    if kind == "boxes":
        return {
            "max_box_acc": r.max_box_acc,
            "max_box_acc_v2": r.max_box_acc_v2,
            "top1_loc": r.top1_loc,
            "top5_loc": r.top5_loc,
            "gt_known_loc": r.gt_known_loc,
            "classification_top1": top1,
        }
    return {"pxap": r.pxap, "classification_top1": top1}


def _baseline_batches(cfg: EvaluateConfig, meta: SplitMetadata) -> Iterator[tuple]:
    cache = load_cam_cache(cfg.cams, meta.image_ids)
    n = len(meta.image_ids)
    for start in range(0, n, cfg.batch_size):
        idx = torch.arange(start, min(start + cfg.batch_size, n))
        yield idx, cache["cams"][idx].float(), cache["logits"][idx]


def _fcam_batches(model, loader: DataLoader, device: torch.device) -> Iterator[tuple]:
    with torch.no_grad():
        for batch in loader:
            seg, logits = model.forward_with_logits(batch["image"].to(device))
            yield batch["index"], torch.softmax(seg, dim=1)[:, 1].cpu(), logits.cpu()


def _top1(logits: list[torch.Tensor], meta: SplitMetadata) -> float:
    labels = torch.tensor([meta.labels[i] for i in meta.image_ids])
    return 100.0 * float((torch.cat(logits).argmax(1) == labels).float().mean())


def evaluate(cfg: EvaluateConfig) -> dict:
    """Run one evaluation job and write ``metrics.json``, ``curves.json`` and ``samples.npz``.

    Returns:
        The content of ``metrics.json``.
    """
    if cfg.variant not in ("baseline", "fcam"):
        raise ConfigError(f"variant: expected 'baseline' or 'fcam', got {cfg.variant!r}")
    needed = ("cams",) if cfg.variant == "baseline" else ("classifier", "decoder_best", "decoder_last")
    missing = [f"--{name.replace('_', '-')}" for name in needed if getattr(cfg, name) is None]
    if missing:
        raise ConfigError(f"the {cfg.variant} evaluation needs {', '.join(missing)}")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    kind = DATASET_KINDS[cfg.ds]
    meta = read_split(cfg.metadata_root / cfg.split, cfg.dataset_root, kind=kind)
    stats = _MapStats(meta, kind, cfg.samples)
    record = {
        "ds": cfg.ds,
        "backbone": cfg.backbone,
        "method": cfg.method,
        "variant": cfg.variant,
        "kind": kind,
        "split": cfg.split,
        "checkpoint": "best",
        "preset": cfg.preset,
        "num_images": len(meta.image_ids),
    }
    tags = {k: record[k] for k in ("ds", "backbone", "method", "variant", "preset")}
    with tracked_run("evaluate", tags=tags, params=cfg) as run:
        logits: list[torch.Tensor] = []

        def keep_logits(batches: Iterator[tuple]) -> Iterator[tuple]:
            for idx, maps, lg in batches:
                logits.append(lg)
                yield idx, maps, lg

        if cfg.variant == "baseline":
            score = score_maps(
                keep_logits(_baseline_batches(cfg, meta)),
                meta,
                kind,
                step=cfg.step,
                normalise=True,
                on_maps=stats,
            )
            record["metrics"] = _metrics(score, kind, _top1(logits, meta))
        else:
            loader = DataLoader(
                WSOLDataset(meta, train=False, resize_size=cfg.size, crop_size=cfg.size),
                batch_size=cfg.batch_size,
                shuffle=False,
            )
            # Imported here: models pull in torchvision (~1.3 s of CPU per job), which the many
            # baseline evaluations of a pipeline do not need.
            from fcam.train.decoder import load_fcam

            model = load_fcam(cfg.decoder_best, cfg.classifier, device)
            score = score_maps(
                keep_logits(_fcam_batches(model, loader, device)),
                meta,
                kind,
                step=cfg.step,
                normalise=False,
                on_maps=stats,
            )
            record["metrics"] = _metrics(score, kind, _top1(logits, meta))
            last = load_fcam(cfg.decoder_last, cfg.classifier, device)
            last_score = score_maps(
                _fcam_batches(last, loader, device), meta, kind, step=cfg.step, normalise=False
            )
            record["metrics_last"] = _metrics(last_score, kind, record["metrics"]["classification_top1"])
        curves = {**score.result.curves(), "histogram": stats.histogram()}
        save_npz(cfg.out_dir / "samples.npz", **_samples(stats, meta, kind, score))
        save_json(curves, cfg.out_dir / "curves.json")
        save_json(record, cfg.out_dir / "metrics.json")
        run.log_metrics(record["metrics"])
        if "metrics_last" in record:
            run.log_metrics({f"last_{k}": v for k, v in record["metrics_last"].items()})
        run.log_artifact(cfg.out_dir / "metrics.json")
        run.log_artifact(cfg.out_dir / "curves.json")
    return record
