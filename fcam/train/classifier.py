"""Phase 1: train the WSOL classifier and keep its best epoch per CAM method (method.md §2).

After every epoch (and before the first, epoch 0, with ImageNet weights) the validation split is
localised with each CAM method the job selects for, and each method keeps the checkpoint of its
own best epoch. The paper trains one classifier per (dataset, backbone, method)
(``classifier.per_method: true``); one shared trajectory with per-method selection is the faster
alternative (design.md, "The DAG"), where every ``<method>/seed<n>/best.pt`` is still a
first-class output. The loop itself (resume, selection, finishing) is :mod:`fcam.train.loop`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from fcam.cam_twins import computed_as, computed_methods
from fcam.cams import compute_cams_multi
from fcam.constants import CAM_METHODS, DATASET_KINDS
from fcam.data.datasets import WSOLDataset, make_loader
from fcam.data.metadata import read_split
from fcam.evaluate.scoring import score_maps, validation_step
from fcam.models import build_classifier
from fcam.models.checkpoints import classifier_checkpoint
from fcam.models.classifier import WSOLClassifier
from fcam.pipeline.sections import ClassifierParams, ImageSizes
from fcam.pipeline.stages import JobSpec
from fcam.pipeline.typed import from_mapping
from fcam.runtime import resolve_device, seed_everything
from fcam.train.loop import FitResult, finish, fit, job_fingerprint, prepare_outputs

__all__ = ["ClassifierJob", "ClassifierPhase", "classifier_step", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierJob:
    """The parameters a classifier job reads (the stage table's ``reads``)."""

    classifier: ClassifierParams
    images: ImageSizes
    cam_reference: bool
    val_step: float


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


class ClassifierPhase:
    """Phase 1 as a :class:`fcam.train.loop.Phase`: the model, its optimiser and the two splits.

    Args:
        job: the job's parameters.
        ds, backbone: what to train.
        methods: the CAM methods to select an epoch for (the selection keys).
        dataset_root, metadata_root: the dataset.
        seed: the training seed (initialisation, crops, flips, batch order, Smooth-Grad-CAM++ noise).
        device: where to train.
    """

    def __init__(
        self,
        job: ClassifierJob,
        *,
        ds: str,
        backbone: str,
        methods: tuple[str, ...],
        dataset_root: Path,
        metadata_root: Path,
        seed: int,
        device: torch.device,
        workers: int = 0,
    ) -> None:
        self.job, self.ds, self.methods, self.seed, self.device = job, ds, methods, seed, device
        self.workers = workers
        self.kind = DATASET_KINDS[ds]
        clf = job.classifier
        # The train split carries labels only on mask datasets (like OpenImages): no localisation needed.
        train_meta = read_split(metadata_root / "train", dataset_root)
        self.val_meta = read_split(metadata_root / "val", dataset_root, kind=self.kind)
        sizes = job.images
        self.train_set = WSOLDataset(
            train_meta, train=True, resize_size=sizes.resize_size, crop_size=sizes.crop_size, seed=seed
        )
        val_set = WSOLDataset(
            self.val_meta, train=False, resize_size=sizes.resize_size, crop_size=sizes.crop_size
        )
        # Its own generator: a new iterator draws a seed, which must not come from the global one,
        # so that the training trajectory does not depend on the validation.
        self.val_loader = make_loader(
            val_set, batch_size=clf.batch_size, workers=workers, generator=torch.Generator().manual_seed(seed)
        )
        self.loader_rng = torch.Generator().manual_seed(seed)
        self.model = build_classifier(
            backbone, train_meta.num_classes, pretrained=clf.pretrained, width=clf.width
        ).to(device)
        self.optimizer = torch.optim.SGD(
            self.model.param_groups(clf.lr),
            lr=clf.lr,
            momentum=clf.momentum,
            nesterov=clf.nesterov,
            weight_decay=clf.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=clf.step_size, gamma=clf.gamma
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loader_rng": self.loader_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.loader_rng.set_state(state["loader_rng"])
        torch.set_rng_state(state["torch_rng"])

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_set.set_epoch(epoch)
        loader = make_loader(
            self.train_set,
            batch_size=self.job.classifier.batch_size,
            workers=self.workers,
            shuffle=True,
            generator=self.loader_rng,
            drop_last=True,
        )
        self.model.train()
        total, correct, loss_sum = 0, 0, 0.0
        epochs = self.job.classifier.epochs
        for batch in tqdm(loader, desc=f"classifier epoch {epoch}/{epochs}", leave=False, mininterval=10):
            images, labels = batch["image"].to(self.device), batch["label"].to(self.device)
            loss, logits = classifier_step(self.model, self.optimizer, images, labels)
            loss_sum += loss * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
        self.scheduler.step()
        return {"train_loss": loss_sum / max(total, 1), "train_acc": 100.0 * correct / max(total, 1)}

    def validate(self) -> dict[str, float]:
        """Validation localisation (percent) of every method, and top-1 accuracy (``acc``), in one
        shared pass over the split.

        Each batch goes through :func:`compute_cams_multi`, which shares the clean forward pass
        among the methods. Validation draws nothing from torch's global generator (the loader has
        its own; Smooth-Grad-CAM++'s noise comes from a generator seeded with the job's seed, the
        same noise every epoch).
        """
        noise = torch.Generator(device=self.device).manual_seed(self.seed)
        batches: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {
            m: [] for m in self.methods
        }
        correct = total = 0
        for batch in self.val_loader:
            images, labels = batch["image"].to(self.device), batch["label"].to(self.device)
            cams, logits = compute_cams_multi(
                self.model,
                images,
                labels,
                list(self.methods),
                reference=self.job.cam_reference,
                generator=noise,
            )
            logits = logits.cpu()
            correct += int((logits.argmax(1) == batch["label"]).sum())
            total += len(batch["label"])
            for method in self.methods:
                batches[method].append((batch["index"], cams[method].cpu(), logits))
        step = validation_step(self.kind, self.job.val_step)
        scores = {
            m: score_maps(batches[m], self.val_meta, self.kind, step=step).value
            for m in self.methods
        }
        return {**scores, "acc": 100.0 * correct / max(total, 1)}  # top-1, selects nothing

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        return classifier_checkpoint(self.model, ds=self.ds, epoch=epoch)


def run(spec: JobSpec, tracker: Any) -> None:
    """The ``classifier`` stage: train, select per method, write each method's ``best.pt`` and the history.

    A shared classifier serves all six methods, and validates one of each group of twins
    (:mod:`fcam.cam_twins`): a twin keeps its computed method's epoch, which it would have chosen
    itself, as its maps are the same.
    """
    job = from_mapping(ClassifierJob, spec.config)
    per_method = "method" in spec.wildcards
    served = (spec.wildcards["method"],) if per_method else CAM_METHODS
    methods = tuple(computed_methods(served, job.cam_reference))
    best_paths = spec.paths("best")
    history = spec.path("history")
    prepare_outputs([*best_paths, history])
    device = resolve_device(spec.device)
    seed_everything(spec.seed)
    phase = ClassifierPhase(
        job,
        ds=spec.wildcards["ds"],
        backbone=spec.wildcards["backbone"],
        methods=methods,
        dataset_root=spec.path("root"),
        metadata_root=spec.path("meta"),
        seed=spec.seed,
        device=device,
        workers=spec.workers,
    )
    fingerprint = job_fingerprint(
        spec.config,
        inputs=[spec.path("root"), spec.path("meta")],
        code=spec.code,
        extra={"methods": methods, "seed": spec.seed, "stage": spec.name},
    )
    result = fit(
        phase,
        keys=methods,
        epochs=job.classifier.epochs,
        work=history.parent / ".work",
        fingerprint=fingerprint,
        run=tracker,
        # Epoch 0 (before any update) is a candidate only with ImageNet weights: from random
        # weights, an untrained network's gradient maps follow colour contrast, can out-score every
        # trained epoch on a small validation split and classify at chance (measured: 3 of 6
        # default-preset Grad-CAM++ selections picked the random network).
        validate_first=job.classifier.pretrained != "none",
    )
    served_by = {m: computed_as(m, job.cam_reference) for m in served}
    result = FitResult(
        best={m: result.best[c] for m, c in served_by.items()},
        best_epoch={m: result.best_epoch[c] for m, c in served_by.items()},
        history=result.history,
    )
    finish(
        history.parent / ".work",
        result,
        best={path: served_by[m] for m, path in zip(served, best_paths, strict=True)},
        history=history,
        summary={"methods": list(served), "computed_as": served_by},
    )
    tracker.log_metrics({f"best_val_{m}": s for m, s in result.best.items()})
    tracker.log_artifact(history)
