"""Phase 1: train the WSOL classifier and select its best epoch per CAM method.

One training trajectory per (dataset, backbone); after every epoch (and before the first, epoch
0) the validation split is localised with each requested CAM method, and each method keeps
the checkpoint of its own best epoch (method.md §2). This is the paper's per-method model
selection over one shared trajectory (design.md, "The DAG"): each ``<method>/best.pt`` is a
first-class output of the job.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from fcam.cams import compute_cams_multi
from fcam.constants import DATASET_KINDS
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.io import save_checkpoint, save_json
from fcam.models import build_classifier
from fcam.models.classifier import WSOLClassifier
from fcam.runtime import resolve_device, seed_everything
from fcam.tracking import tracked_run
from fcam.train.localisation import score_maps, validation_step
from fcam.train.resume import config_fingerprint, load_resume_state, save_resume_state

__all__ = ["ClassifierConfig", "classifier_checkpoint", "classifier_step", "train_classifier"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything phase 1 needs; built by the CLI from the rule's params."""

    ds: str
    backbone: str
    methods: tuple[str, ...]
    dataset_root: Path
    metadata_root: Path
    out_dir: Path
    pretrained: str = "none"
    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.0017
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    step_size: int = 15
    gamma: float = 0.1
    resize_size: int = 256
    crop_size: int = 224
    val_step: float = 0.004
    cam_reference: bool = False
    seed: int = 0
    device: str = "auto"
    preset: str = "default"


def classifier_checkpoint(
    model: WSOLClassifier, *, ds: str, epoch: int, method: str | None, score: float | None
) -> dict:
    """The checkpoint dict of a classifier: weights plus what is needed to rebuild it."""
    return {
        "kind": "classifier",
        "model": model.state_dict(),
        "backbone": model.backbone,
        "num_classes": model.num_classes,
        "ds": ds,
        "epoch": epoch,
        "method": method,
        "score": score,
    }


def _val_scores(
    model: WSOLClassifier,
    loader: DataLoader,
    cfg: ClassifierConfig,
    device: torch.device,
    meta,
    kind,
) -> dict[str, float]:
    """Validation localisation (percent) of every method of ``cfg.methods``, in one pass over ``loader``.

    Each batch goes through :func:`compute_cams_multi`, which shares its clean forward pass among
    the methods; the maps, (B, h, w) at the target layer's resolution, are kept per method and
    scored method by method. Validation draws nothing from torch's global generator (``loader``
    carries its own; Smooth-Grad-CAM++'s noise comes from a generator seeded with ``cfg.seed``,
    the same noise every epoch), so the training trajectory does not depend on which methods
    are validated.
    """
    methods = list(cfg.methods)
    noise = torch.Generator(device=device).manual_seed(cfg.seed)
    batches: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {m: [] for m in methods}
    for batch in loader:
        images = batch["image"].to(device)
        labels = batch["label"].to(device)
        cams, logits = compute_cams_multi(
            model, images, labels, methods, reference=cfg.cam_reference, generator=noise
        )
        logits = logits.cpu()
        for method in methods:
            batches[method].append((batch["index"], cams[method].cpu(), logits))
    step = validation_step(kind, cfg.val_step)
    return {m: score_maps(batches[m], meta, kind, step=step, normalise=True).value for m in methods}


def classifier_step(
    model: WSOLClassifier, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor
) -> tuple[float, torch.Tensor]:
    """One SGD step on the cross-entropy of a batch.

    Args:
        model: the classifier, in train mode.
        images: (B, 3, H, W) normalised crops; labels: (B,) int64 classes.

    Returns:
        The batch's mean loss and its logits (B, K), detached.
    """
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), logits.detach()


def train_classifier(cfg: ClassifierConfig) -> dict[str, float]:
    """Train, select per method, and write ``last.pt``, ``<method>/best.pt`` and ``history.json``.

    Each method keeps the epoch with the best validation localisation; epoch 0 (before any
    update) is a candidate only with ImageNet weights (``pretrained: imagenet``).

    Resumes from ``out_dir/resume.pt`` after a crash when the configuration is unchanged.

    Returns:
        The best validation localisation (percent) per method.
    """
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    kind = DATASET_KINDS[cfg.ds]
    # The train split carries labels only on mask datasets (like OpenImages): no localisation needed.
    train_meta = read_split(cfg.metadata_root / "train", cfg.dataset_root)
    val_meta = read_split(cfg.metadata_root / "val", cfg.dataset_root, kind=kind)
    train_set = WSOLDataset(
        train_meta, train=True, resize_size=cfg.resize_size, crop_size=cfg.crop_size, seed=cfg.seed
    )
    val_set = WSOLDataset(val_meta, train=False, resize_size=cfg.resize_size, crop_size=cfg.crop_size)
    gen = torch.Generator().manual_seed(cfg.seed)
    # Its own generator: a new iterator draws a seed, which must not come from the global one.
    val_loader = DataLoader(
        val_set, batch_size=cfg.batch_size, shuffle=False, generator=torch.Generator().manual_seed(cfg.seed)
    )

    model = build_classifier(cfg.backbone, train_meta.num_classes, pretrained=cfg.pretrained).to(device)
    optimizer = torch.optim.SGD(
        model.param_groups(cfg.lr),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)

    fingerprint = config_fingerprint(cfg)
    # In-progress files live in a work folder that is no declared output (see fcam.train.resume);
    # the declared outputs appear only once the job has finished.
    work = cfg.out_dir / ".work"
    resume_path = work / "resume.pt"
    best: dict[str, float] = {}
    history: list[dict] = []
    start = 1
    state = load_resume_state(resume_path, fingerprint)
    with tracked_run(
        "classifier",
        tags={"ds": cfg.ds, "backbone": cfg.backbone, "method": ",".join(cfg.methods), "preset": cfg.preset},
        params=cfg,
    ) as run:
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["loader_rng"])
            torch.set_rng_state(state["torch_rng"])
            best, history, start = dict(state["best"]), list(state["history"]), state["epoch"] + 1
        elif cfg.pretrained != "none":
            # Epoch 0 is the ImageNet starting point, a candidate like any trained epoch. From
            # random weights it is not: an untrained network's gradient maps follow colour contrast
            # (on the synthetic data, the warm bodies), can out-score every trained epoch on a small
            # validation split, and classify at chance (measured: 3 of 6 default-preset
            # Grad-CAM++ selections picked the random network).
            row = {"epoch": 0}
            scores = _val_scores(model, val_loader, cfg, device, val_meta, kind)
            for method in cfg.methods:
                score = scores[method]
                row[f"val_{method}"] = score
                best[method] = score
                save_checkpoint(
                    classifier_checkpoint(model, ds=cfg.ds, epoch=0, method=method, score=score),
                    work / f"best-{method}.pt",
                )
            history.append(row)
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=0)

        for epoch in range(start, cfg.epochs + 1):
            train_set.set_epoch(epoch)
            loader = DataLoader(
                train_set, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=True
            )
            model.train()
            total, correct, loss_sum = 0, 0, 0.0
            for batch in tqdm(
                loader, desc=f"classifier epoch {epoch}/{cfg.epochs}", leave=False, mininterval=10
            ):
                images, labels = batch["image"].to(device), batch["label"].to(device)
                loss, logits = classifier_step(model, optimizer, images, labels)
                loss_sum += loss * len(labels)
                correct += int((logits.argmax(1) == labels).sum())
                total += len(labels)
            scheduler.step()
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / max(total, 1),
                "train_acc": 100.0 * correct / max(total, 1),
            }
            scores = _val_scores(model, val_loader, cfg, device, val_meta, kind)
            for method in cfg.methods:
                score = scores[method]
                row[f"val_{method}"] = score
                if score > best.get(method, -math.inf):
                    best[method] = score
                    save_checkpoint(
                        classifier_checkpoint(model, ds=cfg.ds, epoch=epoch, method=method, score=score),
                        work / f"best-{method}.pt",
                    )
            history.append(row)
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            log.info("epoch %d: %s", epoch, {k: round(v, 3) for k, v in row.items()})
            save_resume_state(
                resume_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "loader_rng": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "best": best,
                    "history": history,
                    "epoch": epoch,
                },
                fingerprint,
            )

        for method in cfg.methods:
            (cfg.out_dir / method).mkdir(parents=True, exist_ok=True)
            (work / f"best-{method}.pt").replace(cfg.out_dir / method / "best.pt")
        save_checkpoint(
            classifier_checkpoint(model, ds=cfg.ds, epoch=cfg.epochs, method=None, score=None),
            cfg.out_dir / "last.pt",
        )
        save_json({"history": history, "best": best}, cfg.out_dir / "history.json")
        run.log_metrics({f"best_val_{m}": s for m, s in best.items()})
        run.log_artifact(cfg.out_dir / "history.json")
        run.set_tags({"checkpoint_dir": str(cfg.out_dir.resolve())})
    shutil.rmtree(work, ignore_errors=True)
    return best
