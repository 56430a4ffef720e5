"""Phase 2: train the F-CAM decoder on the frozen classifier (method.md §2, §4, §5).

Each iteration: seeds are sampled from the cached CAM of the image (following its crop and
flip), the decoder's two-channel output is scored by the weighted sum of named loss terms
(partial cross-entropy on the seeds, dense CRF, absolute size), and only the decoder learns.
The best epoch is selected by validation localisation of the foreground map.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from fcam.cams.cache import load_cam_cache, load_classifier
from fcam.constants import DATASET_KINDS
from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.errors import CheckpointError
from fcam.io import load_checkpoint, save_checkpoint, save_json
from fcam.losses import BarrierSchedule, FCAMLoss, LossTerm, sample_seeds, seed_regions
from fcam.models import FCAM, build_decoder
from fcam.runtime import resolve_device, seed_everything
from fcam.tracking import tracked_run
from fcam.train.localisation import score_maps, validation_step
from fcam.train.resume import config_fingerprint, load_resume_state, save_resume_state

__all__ = ["DecoderConfig", "decoder_step", "load_fcam", "train_decoder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecoderConfig:
    """Everything phase 2 needs; built by the CLI from the rule's params."""

    ds: str
    backbone: str
    method: str
    classifier: Path
    cams: Path
    dataset_root: Path
    metadata_root: Path
    out_dir: Path
    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    resize_size: int = 256
    crop_size: int = 224
    val_step: float = 0.004
    n_fg: int = 1
    n_bg: int = 1
    bg_fraction: float = 0.1
    erosion: int = 11
    dilation: int = 3
    terms: tuple[LossTerm, ...] = field(default_factory=tuple)
    crf_sigma_rgb: float = 15.0
    crf_sigma_xy: float = 100.0
    crf_scale: float = 1.0
    barrier_t0: float = 1.0
    barrier_factor: float = 1.01
    barrier_t_max: float = 10.0
    seed: int = 0
    device: str = "auto"
    preset: str = "default"


def _decoder_checkpoint(model: FCAM, cfg: DecoderConfig, epoch: int, score: float) -> dict:
    return {
        "kind": "decoder",
        "decoder": model.decoder.state_dict(),
        "backbone": cfg.backbone,
        "encoder_channels": list(model.classifier.encoder.out_channels),
        "classifier": str(cfg.classifier),
        "ds": cfg.ds,
        "method": cfg.method,
        "epoch": epoch,
        "score": score,
        "resize_size": cfg.resize_size,
        "crop_size": cfg.crop_size,  # the input size it was trained at; fcam localize defaults to it
    }


def load_fcam(decoder_path: Path, classifier_path: Path, device: torch.device) -> FCAM:
    """Rebuild F-CAM (frozen classifier + trained decoder) from the two checkpoints."""
    ckpt = load_checkpoint(decoder_path, map_location=device)
    if ckpt.get("kind") != "decoder":
        raise CheckpointError(f"{decoder_path}: not a decoder checkpoint (kind={ckpt.get('kind')!r})")
    classifier = load_classifier(classifier_path, device)
    decoder = build_decoder(ckpt["backbone"], tuple(ckpt["encoder_channels"]))
    try:
        decoder.load_state_dict(ckpt["decoder"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{decoder_path}: weights do not fit a {ckpt['backbone']} decoder: {exc}"
        ) from exc
    return FCAM(classifier, decoder).to(device).eval()


def _val_score(model: FCAM, loader: DataLoader, meta, kind: str, step: float, device: torch.device) -> float:
    def batches():
        with torch.no_grad():
            for batch in loader:
                yield batch["index"], model.foreground(batch["image"].to(device)).cpu(), None

    model.eval()
    return score_maps(batches(), meta, kind, step=step, normalise=False).value


def decoder_step(
    model: FCAM,
    optimizer: torch.optim.Optimizer,
    criterion: FCAMLoss,
    images: torch.Tensor,
    raw: torch.Tensor,
    cams: torch.Tensor,
    cfg: DecoderConfig,
    *,
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
        cfg: seed settings (``bg_fraction``, ``erosion``, ``n_fg``, ``n_bg``, ``dilation``).
        epoch: 0-based epoch (terms may switch on or off by epoch).
        t: the size term's log-barrier parameter.
        generator: draws the seeds, on the images' device.

    Returns:
        The total loss and each active term's unweighted value.
    """
    fg_region, bg_region = seed_regions(cams, bg_fraction=cfg.bg_fraction, erosion=cfg.erosion)
    seeds = sample_seeds(
        fg_region, bg_region, n_fg=cfg.n_fg, n_bg=cfg.n_bg, dilation=cfg.dilation, generator=generator
    )
    loss, terms = criterion(model(images), seeds, raw, epoch=epoch, t=t)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), terms


def train_decoder(cfg: DecoderConfig) -> float:
    """Train the decoder; write ``best.pt``, ``last.pt`` and ``history.json`` under ``out_dir``.

    Resumes after a crash when the configuration is unchanged (barrier ``t`` included).

    Returns:
        The best validation localisation in percent.
    """
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    kind = DATASET_KINDS[cfg.ds]
    # The train split carries labels only on mask datasets (like OpenImages): no localisation needed.
    train_meta = read_split(cfg.metadata_root / "train", cfg.dataset_root)
    val_meta = read_split(cfg.metadata_root / "val", cfg.dataset_root, kind=kind)
    cache = load_cam_cache(cfg.cams, train_meta.image_ids)
    if cache["size"] != cfg.resize_size:
        raise CheckpointError(
            f"{cfg.cams}: CAMs cached at {cache['size']} px, training resizes to {cfg.resize_size}"
        )
    train_set = WSOLDataset(
        train_meta,
        train=True,
        resize_size=cfg.resize_size,
        crop_size=cfg.crop_size,
        cams=cache["cams"].float(),
        seed=cfg.seed,
    )
    val_loader = DataLoader(
        WSOLDataset(val_meta, train=False, resize_size=cfg.resize_size, crop_size=cfg.crop_size),
        batch_size=cfg.batch_size,
        shuffle=False,
    )

    classifier = load_classifier(cfg.classifier, device)
    model = FCAM(classifier, build_decoder(cfg.backbone, classifier.encoder.out_channels)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )
    criterion = FCAMLoss(
        cfg.terms, crf_sigma_rgb=cfg.crf_sigma_rgb, crf_sigma_xy=cfg.crf_sigma_xy, crf_scale=cfg.crf_scale
    )
    barrier = BarrierSchedule(t0=cfg.barrier_t0, factor=cfg.barrier_factor, t_max=cfg.barrier_t_max)
    gen = torch.Generator().manual_seed(cfg.seed)
    seed_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    fingerprint = config_fingerprint(cfg)
    work = cfg.out_dir / ".work"
    resume_path = work / "resume.pt"
    best, history, start = -1.0, [], 1
    state = load_resume_state(resume_path, fingerprint)
    tags = {"ds": cfg.ds, "backbone": cfg.backbone, "method": cfg.method, "preset": cfg.preset}
    with tracked_run("decoder", tags=tags, params=cfg) as run:
        if state is not None:
            model.decoder.load_state_dict(state["decoder"])
            optimizer.load_state_dict(state["optimizer"])
            barrier.load_state_dict(state["barrier"])
            gen.set_state(state["loader_rng"])
            seed_gen.set_state(state["seed_rng"])
            best, history, start = float(state["best"]), list(state["history"]), state["epoch"] + 1

        for epoch in range(start, cfg.epochs + 1):
            train_set.set_epoch(epoch)
            loader = DataLoader(
                train_set, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=True
            )
            model.train()
            sums: dict[str, float] = {}
            steps = 0
            for batch in tqdm(
                loader, desc=f"decoder epoch {epoch}/{cfg.epochs}", leave=False, mininterval=10
            ):
                loss, terms = decoder_step(
                    model,
                    optimizer,
                    criterion,
                    batch["image"].to(device),
                    batch["raw"].to(device),
                    batch["cam"].to(device),
                    cfg,
                    epoch=epoch - 1,
                    t=barrier.t,
                    generator=seed_gen,
                )
                for name, value in {"loss": loss, **terms}.items():
                    sums[name] = sums.get(name, 0.0) + value
                steps += 1
            score = _val_score(model, val_loader, val_meta, kind, validation_step(kind, cfg.val_step), device)
            row = {
                "epoch": epoch,
                "t": barrier.t,
                "val_localisation": score,
                **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
            }
            barrier.step()
            history.append(row)
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
            if score > best:
                best = score
                save_checkpoint(_decoder_checkpoint(model, cfg, epoch, score), work / "best.pt")
            save_resume_state(
                resume_path,
                {
                    "decoder": model.decoder.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "barrier": barrier.state_dict(),
                    "loader_rng": gen.get_state(),
                    "seed_rng": seed_gen.get_state(),
                    "best": best,
                    "history": history,
                    "epoch": epoch,
                },
                fingerprint,
            )

        (work / "best.pt").replace(cfg.out_dir / "best.pt")
        save_checkpoint(
            _decoder_checkpoint(model, cfg, cfg.epochs, history[-1]["val_localisation"]),
            cfg.out_dir / "last.pt",
        )
        save_json({"history": history, "best": best}, cfg.out_dir / "history.json")
        run.log_metrics({"best_val_localisation": best})
        run.log_artifact(cfg.out_dir / "history.json")
        run.set_tags({"checkpoint_dir": str(cfg.out_dir.resolve())})
    shutil.rmtree(work, ignore_errors=True)
    return best
