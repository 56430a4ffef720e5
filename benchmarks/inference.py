"""F-CAM inference latency: milliseconds per image of the foreground map, per backbone and batch size.

What is timed is the forward pass that ``fcam localize`` runs on a batch
(:func:`fcam.localize._run_batch`): ``FCAM.foreground(x)``, i.e. the frozen classifier's encoder,
the U-Net decoder and the softmax, under ``torch.inference_mode()`` with the model in eval mode
(the model :func:`fcam.models.checkpoints.load_fcam` rebuilds). Reading and resizing the images,
the copy of the input to the device and writing the PNGs are not included; the map is left on
the device. Random weights and a random input: the cost does not depend on the values. Each batch
size is timed ``--repeats`` times after ``--warmup`` untimed runs (the first CUDA calls pick
their kernels), the device synchronised around the timer; the median is reported.

The paper (docs/method.md §7) reports 6.2 / 25.5 / 18.5 ms per image for VGG16 / InceptionV3 /
ResNet50 on an unnamed GPU, without saying the batch size; batch 1 is the latency of one image,
batch 32 (the evaluation batch of the presets) the throughput of the evaluation passes.

Example:
    python benchmarks/inference.py --size 64 --batches 1 4 --backbones resnet50 --threads 2
    python benchmarks/inference.py --device cuda --size 224 --batches 1 32 --json inference_gpu.json
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from fcam.constants import BACKBONES
from fcam.io import save_json
from fcam.models import FCAM, build_classifier, build_decoder
from fcam.timing import benchmark_parser, device_name, parse_benchmark_args, provenance, time_run

logger = logging.getLogger("benchmarks.inference")

#: F-CAM inference time per image reported by the paper (ms; GPU and batch size not stated).
PAPER_MS_PER_IMAGE = {"vgg16": 6.2, "inceptionv3": 25.5, "resnet50": 18.5}


def build_fcam(backbone: str, num_classes: int, device: torch.device) -> FCAM:
    """Random-weight F-CAM as :func:`fcam.models.checkpoints.load_fcam` returns it (frozen, eval mode)."""
    classifier = build_classifier(backbone, num_classes, pretrained="none").eval().requires_grad_(False)
    decoder = build_decoder(backbone, classifier.encoder.out_channels)
    return FCAM(classifier, decoder).to(device).eval()


def _forward(model: FCAM, images: torch.Tensor) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model.foreground(images)  # (B, H, W) in [0, 1]

    return run


def benchmark(
    backbones: Sequence[str],
    batches: Sequence[int],
    *,
    size: int,
    device: torch.device,
    repeats: int,
    warmup: int,
    num_classes: int = 200,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict[str, Any]]:
    """Time ``FCAM.foreground`` on a random (B, 3, size, size) input for each backbone and batch size.

    Returns:
        One row per (backbone, batch): ``backbone, batch, size, seconds`` (one forward of the
        batch), ``ms_per_image``, ``images_per_s``, ``peak_mib`` (peak CUDA memory, None on the
        CPU) and ``paper_ms_per_image`` (the paper's figure for that backbone).
    """
    gen = torch.Generator().manual_seed(0)
    rows = []
    for backbone in backbones:
        model = build_fcam(backbone, num_classes, device)
        for batch in batches:
            images = torch.randn(batch, 3, size, size, generator=gen).to(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = time_run(_forward(model, images), device, repeats=repeats, warmup=warmup, clock=clock)
            peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            rows.append({
                "backbone": backbone, "batch": batch, "size": size, "seconds": seconds,
                "ms_per_image": 1000.0 * seconds / batch, "images_per_s": batch / seconds,
                "peak_mib": peak, "paper_ms_per_image": PAPER_MS_PER_IMAGE.get(backbone),
            })
            logger.info("%s batch %d: %.2f ms/image", backbone, batch, 1000.0 * seconds / batch)
        del model
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per (backbone, batch): ms/image, images/s, peak memory and the paper's ms/image."""
    lines = ["{:<12} {:>5} {:>10} {:>10} {:>9} {:>13}".format(
        "backbone", "batch", "ms/image", "images/s", "peak MiB", "paper ms/img")]
    for row in rows:
        peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        paper = "-" if row["paper_ms_per_image"] is None else f"{row['paper_ms_per_image']:.1f}"
        lines.append(f"{row['backbone']:<12} {row['batch']:>5} {row['ms_per_image']:>10.2f} "
                     f"{row['images_per_s']:>10.1f} {peak:>9} {paper:>13}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224, help="square input side H = W")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="batch sizes to time")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--classes", type=int, default=200, help="classes of the head")
    args, device = parse_benchmark_args(parser, argv)
    if args.size < 32 or any(b < 1 for b in args.batches):
        parser.error("--size must be >= 32 and every --batches value >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = benchmark(args.backbones, args.batches, size=args.size, device=device,
                     repeats=args.repeats, warmup=args.warmup, num_classes=args.classes)
    print(f"F-CAM inference (FCAM.foreground, inference mode), device {device_name(device)} ({device}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}x{args.size}")
    print(format_table(rows))
    if args.json is not None:
        save_json({**provenance(device, args), "benchmark": "fcam inference", "results": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
