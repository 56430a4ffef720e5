"""Testing: evaluate one (dataset, backbone, method, seed, variant) on the test split.

``baseline`` scores the classifier's interpolated CAMs, read from the test split's CAM cache;
``fcam`` runs F-CAM (frozen classifier + decoder) and scores its foreground map, for the best
and the last decoder checkpoint (method.md §2). Outputs in ``out_dir``:

- ``metrics.json``: ``{ds, backbone, method, seed, variant, kind, split, checkpoint, preset,
  num_images, setting (the search point of an F-CAM decoder, else null), metrics: {...},
  metrics_last: {...} (decoders only)}``; box datasets' metrics are ``max_box_acc,
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
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from fcam.cams.cache import load_cam_cache
from fcam.constants import DATASET_KINDS, EVAL_SIZE
from fcam.data.datasets import WSOLDataset, make_loader
from fcam.data.images import read_image_rgb
from fcam.data.metadata import SplitMetadata, gt_boxes_at, load_gt_masks, read_split
from fcam.evaluate.scoring import LocalisationScore, score_maps
from fcam.io import remove_stale_temporaries, save_json, save_npz
from fcam.metrics import boxes_from_map
from fcam.pipeline.stages import JobSpec
from fcam.pipeline.typed import from_mapping
from fcam.runtime import resolve_device, seed_everything

__all__ = ["EvaluateJob", "run_ablation", "run_baseline", "run_fcam", "same_decoder"]

HIST_BINS = 50


@dataclass(frozen=True)
class EvaluateJob:
    """The parameters an evaluation job reads (``size``: F-CAM's input size; baseline: none)."""

    step: float
    samples: int
    batch_size: int
    size: int | None = None


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


def _baseline_batches(cams: Path, meta: SplitMetadata, batch_size: int) -> Iterator[tuple]:
    cache = load_cam_cache(cams, meta.image_ids)
    n = len(meta.image_ids)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        yield idx, cache["cams"][idx].float(), cache["logits"][idx]


def _fcam_batches(model, loader: DataLoader, device: torch.device) -> Iterator[tuple]:
    with torch.no_grad():
        for batch in loader:
            seg, logits = model.forward_with_logits(batch["image"].to(device))
            yield batch["index"], torch.softmax(seg, dim=1)[:, 1].cpu(), logits.cpu()


def same_decoder(a: Path, b: Path) -> bool:
    """Whether two decoder checkpoints hold the same weights (so F-CAM's maps are the same).

    The best and the last checkpoint of a decoder are separate files that differ in their
    metadata (score) even when the best epoch is the last; the weights decide.

    Raises:
        CheckpointError: either file is missing or unreadable.
    """
    from fcam.io import load_checkpoint

    if a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b)):
        return True
    sa, sb = load_checkpoint(a).get("decoder"), load_checkpoint(b).get("decoder")
    if not isinstance(sa, dict) or not isinstance(sb, dict):
        return False  # not decoder checkpoints: loading them says so
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa
    )


def _top1(logits: list[torch.Tensor], meta: SplitMetadata) -> float:
    labels = torch.tensor([meta.labels[i] for i in meta.image_ids])
    return 100.0 * float((torch.cat(logits).argmax(1) == labels).float().mean())


def _evaluate(spec: JobSpec, tracker: Any, variant: str, job: EvaluateJob) -> dict:
    """Score one variant's maps on the test split; write metrics.json, curves.json, samples.npz."""
    ds = spec.wildcards["ds"]
    outputs = {name: spec.path(name) for name in ("metrics", "curves", "samples")}
    remove_stale_temporaries(outputs.values())
    device = resolve_device(spec.device)
    seed_everything(spec.seed)
    kind = DATASET_KINDS[ds]
    meta = read_split(spec.path("meta") / "test", spec.path("root"), kind=kind)
    stats = _MapStats(meta, kind, job.samples)
    record: dict[str, Any] = {
        "ds": ds,
        "backbone": spec.wildcards["backbone"],
        "method": spec.wildcards["method"],
        "computed_as": spec.tags["computed_as"],  # a twin's maps are its computed method's
        "seed": spec.seed,
        "variant": variant,
        "kind": kind,
        "split": "test",
        "checkpoint": "best",
        "preset": spec.preset,
        "num_images": len(meta.image_ids),
        "setting": None,
    }
    logits: list[torch.Tensor] = []

    def keep_logits(batches: Iterator[tuple]) -> Iterator[tuple]:
        for idx, maps, lg in batches:
            logits.append(lg)
            yield idx, maps, lg

    if "cams" in spec.inputs:
        batches = _baseline_batches(spec.path("cams"), meta, job.batch_size)
        score = score_maps(keep_logits(batches), meta, kind, step=job.step, on_maps=stats)
        record["metrics"] = _metrics(score, kind, _top1(logits, meta))
    else:
        # Imported here: the many baseline evaluations of a pipeline build no network (the models
        # no longer import torchvision, so this saves only ~30 ms now).
        from fcam.io import load_checkpoint
        from fcam.models.checkpoints import load_fcam

        assert job.size is not None
        dataset = WSOLDataset(meta, train=False, resize_size=job.size, crop_size=job.size)
        loader = make_loader(dataset, batch_size=job.batch_size, workers=spec.workers)
        model = load_fcam(spec.path("best"), spec.path("classifier"), device)
        score = score_maps(
            keep_logits(_fcam_batches(model, loader, device)),
            meta,
            kind,
            step=job.step,
            on_maps=stats,
        )
        record["metrics"] = _metrics(score, kind, _top1(logits, meta))
        record["setting"] = load_checkpoint(spec.path("best")).get("setting")
        if same_decoder(spec.path("best"), spec.path("last")):
            # The best epoch is the last: the same maps, so the same numbers (no second pass).
            record["metrics_last"] = dict(record["metrics"])
        else:
            last = load_fcam(spec.path("last"), spec.path("classifier"), device)
            last_score = score_maps(_fcam_batches(last, loader, device), meta, kind, step=job.step)
            record["metrics_last"] = _metrics(last_score, kind, record["metrics"]["classification_top1"])
    curves = {**score.result.curves(), "histogram": stats.histogram()}
    save_npz(outputs["samples"], **_samples(stats, meta, kind, score))
    save_json(curves, outputs["curves"])
    save_json(record, outputs["metrics"])
    tracker.log_metrics(record["metrics"])
    if "metrics_last" in record:
        tracker.log_metrics({f"last_{k}": v for k, v in record["metrics_last"].items()})
    tracker.log_artifact(outputs["metrics"])
    tracker.log_artifact(outputs["curves"])
    return record


def run_baseline(spec: JobSpec, tracker: Any) -> None:
    """The ``evaluate_baseline`` stage: the interpolated CAMs from the test split's cache."""
    _evaluate(spec, tracker, "baseline", from_mapping(EvaluateJob, {**spec.config, "size": None}))


def run_fcam(spec: JobSpec, tracker: Any) -> None:
    """The ``evaluate_fcam`` stage: F-CAM's foreground map, best and last decoder checkpoints."""
    _evaluate(spec, tracker, "fcam", from_mapping(EvaluateJob, spec.config))


def run_ablation(spec: JobSpec, tracker: Any) -> None:
    """The ``ablation_evaluate`` stage: an ablation decoder, like ``evaluate_fcam``."""
    _evaluate(spec, tracker, spec.wildcards["variant"], from_mapping(EvaluateJob, spec.config))
