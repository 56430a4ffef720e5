"""Throughput of :func:`fcam.cams.compute_cams`: images/s per backbone and CAM method, batched vs
one image at a time.

Backbones: fcam's classifiers (``resnet50``, ``vgg16``, ``inceptionv3`` via
``fcam.models.build_classifier``; skipped with a note if that module cannot be imported) and two
torchvision references (``tv-resnet18``, ``tv-resnet50``, target layer4). Random weights: the cost
does not depend on them. Each (backbone, method, mode) is timed ``--repeats`` times after
``--warmup`` untimed runs, with the device synchronised around the timer; the median is reported.

Example:
    python benchmarks/cams.py --size 64 --batch 16 --backbones resnet50 --methods cam gradcam --json out.json
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torchvision
from torch import nn

from fcam.cams import compute_cams
from fcam.constants import BACKBONES, CAM_METHODS
from fcam.io import save_json
from fcam.timing import benchmark_parser, device_name, parse_benchmark_args, provenance, time_run

logger = logging.getLogger("benchmarks.cams")

TORCHVISION_BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "tv-resnet18": torchvision.models.resnet18,
    "tv-resnet50": torchvision.models.resnet50,
}
MODES = ("batched", "single")


def build_model(name: str, num_classes: int) -> tuple[nn.Module, nn.Module] | None:
    """(model, target layer) for a backbone name, or None if fcam.models is unavailable."""
    if name in TORCHVISION_BACKBONES:
        model = TORCHVISION_BACKBONES[name](weights=None, num_classes=num_classes)
        return model, model.layer4
    try:
        from fcam.models import build_classifier
    except ImportError as exc:
        logger.warning("skipping %s: fcam.models is not available (%s)", name, exc)
        return None
    model = build_classifier(name, num_classes, pretrained="none")
    return model, model.target_layer


def _one_at_a_time(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, method: str, **kwargs: Any
) -> list[torch.Tensor]:
    """The baseline: compute_cams called once per image."""
    return [compute_cams(model, images[i : i + 1], labels[i : i + 1], method, **kwargs)
            for i in range(len(labels))]


def benchmark(
    backbones: Sequence[str],
    methods: Sequence[str],
    *,
    size: int,
    batch: int,
    device: torch.device,
    repeats: int,
    warmup: int,
    num_classes: int = 200,
    smooth_samples: int = 4,
    modes: Sequence[str] = MODES,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict[str, Any]]:
    """Time compute_cams on a random batch (B, 3, size, size) for each backbone x method x mode.

    Returns:
        One row per (backbone, method, mode): ``backbone, method, mode ("batched": one call for
        the batch; "single": one call per image), batch, size, map (h x w), seconds (for the whole
        batch), images_per_s``.
    """
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    labels = (torch.arange(batch) % num_classes).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    rows = []
    for name in backbones:
        built = build_model(name, num_classes)
        if built is None:
            continue
        model, layer = built
        model.to(device).eval()
        for method in methods:
            kwargs = {"target_layer": layer, "smooth_samples": smooth_samples, "generator": generator}
            runs = {
                "batched": partial(compute_cams, model, images, labels, method, **kwargs),
                "single": partial(_one_at_a_time, model, images, labels, method, **kwargs),
            }
            map_size = "x".join(str(n) for n in runs["batched"]().shape[1:])
            for mode in modes:
                seconds = time_run(runs[mode], device, repeats=repeats, warmup=warmup, clock=clock)
                rows.append({
                    "backbone": name, "method": method, "mode": mode, "batch": batch, "size": size,
                    "map": map_size, "seconds": seconds, "images_per_s": batch / seconds,
                })
                logger.info("%s %s %s: %.1f images/s", name, method, mode, batch / seconds)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per (backbone, method): images/s batched and single, and the speed-up ("-": not timed)."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        entry = by_key.setdefault((row["backbone"], row["method"]), {"map": row["map"]})
        entry[row["mode"]] = row["images_per_s"]
    header = ("backbone", "method", "map", "batched img/s", "single img/s", "speed-up")
    lines = ["{:<12} {:<16} {:>6} {:>14} {:>13} {:>9}".format(*header)]
    for (backbone, method), entry in by_key.items():
        batched, single = entry.get("batched"), entry.get("single")
        speedup = f"{batched / single:.1f}x" if batched and single else "-"
        lines.append(f"{backbone:<12} {method:<16} {entry['map']:>6} "
                     f"{'-' if batched is None else f'{batched:.1f}':>14} "
                     f"{'-' if single is None else f'{single:.1f}':>13} {speedup:>9}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="square input side H = W")
    parser.add_argument("--batch", type=int, default=16, help="images per batch")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES),
                        choices=[*BACKBONES, *TORCHVISION_BACKBONES])
    parser.add_argument("--methods", nargs="+", default=list(CAM_METHODS), choices=CAM_METHODS)
    parser.add_argument("--smooth-samples", type=int, default=4, help="noisy passes of Smooth-Grad-CAM++")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                        help="batched: one call per batch; single: one call per image")
    args, device = parse_benchmark_args(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = benchmark(args.backbones, args.methods, size=args.size, batch=args.batch, device=device,
                     repeats=args.repeats, warmup=args.warmup, smooth_samples=args.smooth_samples,
                     modes=args.modes)
    print(f"device {device_name(device)} ({device}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, input {args.size}x{args.size}, batch {args.batch}")
    print(format_table(rows))
    if args.json is not None:
        report = {**provenance(device, args), "torchvision": torchvision.__version__, "results": rows}
        save_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
