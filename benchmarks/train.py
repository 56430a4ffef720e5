"""Training throughput: images/s of one SGD step of each phase, per backbone.

``classifier``: phase 1, :func:`fcam.train.classifier.classifier_step` (forward, cross-entropy,
backward through the whole backbone, update). ``decoder``: phase 2,
:func:`fcam.train.decoder.decoder_step` (seeds from the CAMs, frozen classifier forward, decoder
forward and backward, PCE + dense CRF + size loss, update). Random weights and smooth random
images, CAMs and labels: the cost does not depend on the values, except the CRF's, which grows
with how much of the colour-position lattice the images fill (smooth images are close to
photographs, see ``benchmarks/crf.py``). Each step is timed ``--repeats`` times after
``--warmup`` untimed steps, the device synchronised around the timer; the median is reported.

This is what sizes a preset: a phase's epoch takes about ``images / throughput`` seconds, plus
the validation pass.

Example:
    python benchmarks/train.py --size 64 --batch 16 --threads 2
    python benchmarks/train.py --size 224 --batch 32 --device cuda --json train_gpu.json
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fcam.constants import BACKBONES, IMAGENET_MEAN, IMAGENET_STD
from fcam.io import save_json
from fcam.losses import REFERENCE_TERMS, FCAMLoss
from fcam.models import FCAM, build_classifier, build_decoder
from fcam.pipeline.sections import SeedParams
from fcam.timing import benchmark_parser, device_name, parse_benchmark_args, provenance, time_run
from fcam.train.classifier import classifier_step
from fcam.train.decoder import decoder_step

logger = logging.getLogger("benchmarks.train")

PHASES = ("classifier", "decoder")


def smooth_random(batch: int, channels: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, channels, size, size) in [0, 1]: uniform noise on a 7 x 7 grid, bilinearly upsampled."""
    coarse = torch.rand(batch, channels, 7, 7, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)


def _step_runs(
    backbone: str, *, size: int, batch: int, device: torch.device, num_classes: int
) -> dict[str, Callable[[], Any]]:
    """One closure per phase that runs one training step on a fixed batch."""
    gen = torch.Generator().manual_seed(0)
    raw = (smooth_random(batch, 3, size, gen) * 255).to(device)
    mean, std = (torch.tensor(v, device=device).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    images = (raw / 255 - mean) / std
    labels = torch.randint(num_classes, (batch,), generator=gen).to(device)
    cams = smooth_random(batch, 1, size, gen)[:, 0].to(device)

    classifier = build_classifier(backbone, num_classes).to(device).train()
    clf_opt = torch.optim.SGD(classifier.param_groups(0.001), lr=0.001, momentum=0.9)

    frozen = build_classifier(backbone, num_classes)
    fcam = FCAM(frozen, build_decoder(backbone, frozen.encoder.out_channels)).to(device).train()
    dec_opt = torch.optim.SGD([p for p in fcam.parameters() if p.requires_grad], lr=0.001, momentum=0.9)
    # The paper's loss (docs/method.md §6): every term, its CRF settings.
    criterion = FCAMLoss(REFERENCE_TERMS, crf_sigma_rgb=15.0, crf_sigma_xy=100.0)
    seeds = SeedParams(n_fg=1, n_bg=1, bg_ties="exact", erosion=11, dilation=3)  # the paper's seeds
    seed_gen = torch.Generator(device=device).manual_seed(1)
    return {
        "classifier": lambda: classifier_step(classifier, clf_opt, images, labels),
        "decoder": lambda: decoder_step(
            fcam, dec_opt, criterion, images, raw, cams, seeds,
            bg_fraction=0.1, epoch=0, t=1.0, generator=seed_gen,
        ),
    }


def benchmark(
    backbones: Sequence[str],
    phases: Sequence[str],
    *,
    size: int,
    batch: int,
    device: torch.device,
    repeats: int,
    warmup: int,
    num_classes: int = 200,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict[str, Any]]:
    """Time one training step of each phase for each backbone.

    Returns:
        One row per (backbone, phase): ``backbone, phase, batch, size, seconds`` (one step),
        ``images_per_s`` and ``peak_mib`` (peak CUDA memory of the phase, None on the CPU).
    """
    rows = []
    for backbone in backbones:
        runs = _step_runs(backbone, size=size, batch=batch, device=device, num_classes=num_classes)
        for phase in phases:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = time_run(runs[phase], device, repeats=repeats, warmup=warmup, clock=clock)
            peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            rows.append({
                "backbone": backbone, "phase": phase, "batch": batch, "size": size,
                "seconds": seconds, "images_per_s": batch / seconds, "peak_mib": peak,
            })
            logger.info("%s %s: %.1f images/s", backbone, phase, batch / seconds)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per backbone: images/s of each phase (and peak GPU memory where measured)."""
    phases = list(dict.fromkeys(row["phase"] for row in rows))
    by_backbone: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_backbone.setdefault(row["backbone"], {})[row["phase"]] = row
    header = "{:<12}".format("backbone") + "".join(f" {p + ' img/s':>17} {'peak MiB':>9}" for p in phases)
    lines = [header]
    for backbone, entry in by_backbone.items():
        cells = []
        for phase in phases:
            row = entry.get(phase)
            peak = "-" if row is None or row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
            rate = "-" if row is None else f"{row['images_per_s']:.1f}"
            cells.append(f" {rate:>17} {peak:>9}")
        lines.append(f"{backbone:<12}" + "".join(cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="square crop side H = W")
    parser.add_argument("--batch", type=int, default=16, help="images per step")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=PHASES)
    parser.add_argument("--classes", type=int, default=200, help="classes of the head")
    args, device = parse_benchmark_args(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = benchmark(args.backbones, args.phases, size=args.size, batch=args.batch, device=device,
                     repeats=args.repeats, warmup=args.warmup, num_classes=args.classes)
    print(f"device {device_name(device)} ({device}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, crops {args.size}x{args.size}, batch {args.batch}")
    print(format_table(rows))
    if args.json is not None:
        save_json({**provenance(device, args), "results": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
