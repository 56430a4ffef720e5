"""Time the dense CRF loss (forward + backward) on a batch, at several scales.

Example:
    python benchmarks/crf.py --batch 32 --size 224 --scales 1.0 0.5 0.25 --threads 2 --json crf.json

Images are natural photographs bundled with scikit-image (resized, cycled over the batch) by
default, or uniform noise with ``--images noise`` (a worst case: noise fills far more of the 5-D
lattice than a photograph). ``--accuracy-images k`` also compares ``W S`` with the brute-force
sum on the first k images (about a minute per 224 x 224 image). Wall-clock times cover the loss
and ``loss.backward()`` with the device synchronised; the process's CPU time is reported too,
since wall time on a shared machine includes waiting for the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fcam.losses import bilateral_filter, dense_crf_loss
from fcam.timing import device_name, synchronize
from fcam.tracking import git_commit

#: Photographs bundled with scikit-image; the first four were not used to fit the CRF constants.
PHOTOS = (
    "stereo_motorcycle",
    "retina",
    "immunohistochemistry",
    "hubble_deep_field",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
)


def make_images(kind: str, batch: int, size: int, seed: int) -> torch.Tensor:
    """(batch, 3, size, size) float32 raw RGB in [0, 255]."""
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        return torch.rand(batch, 3, size, size, generator=gen) * 255.0
    try:
        from skimage import data
    except ImportError as err:
        raise SystemExit("--images natural needs scikit-image (pip install scikit-image)") from err
    arrays = [getattr(data, name)() for name in PHOTOS]
    arrays = [array[0] if isinstance(array, tuple) else array for array in arrays]  # stereo pairs
    photos = [torch.from_numpy(array.copy()).permute(2, 0, 1).float()[None] for array in arrays]
    photos = [F.interpolate(p, size=(size, size), mode="area") for p in photos]
    return torch.cat([photos[i % len(photos)] for i in range(batch)])


def time_scale(images: torch.Tensor, logits: torch.Tensor, scale: float, warmup: int, repeat: int) -> dict:
    """Forward + backward of the CRF loss, ``repeat`` timed runs after ``warmup`` untimed ones."""
    device = images.device
    forward, total, cpu = [], [], []
    for run in range(warmup + repeat):
        leaf = logits.detach().requires_grad_(True)
        synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = dense_crf_loss(images, torch.softmax(leaf, dim=1), scale=scale)
        synchronize(device)
        middle = time.perf_counter()
        loss.backward()
        synchronize(device)
        end, end_cpu = time.perf_counter(), time.process_time()
        if run >= warmup:
            forward.append(middle - start)
            total.append(end - start)
            cpu.append(end_cpu - start_cpu)
    return {
        "scale": scale,
        "forward_s": sum(forward) / repeat,
        "forward_backward_s": sum(total) / repeat,
        "forward_backward_min_s": min(total),
        "forward_backward_max_s": max(total),
        "process_cpu_s": sum(cpu) / repeat,
        "loss": float(loss.detach()),
    }


def exact_filter(
    image: torch.Tensor, values: torch.Tensor, sigma_rgb: float, sigma_xy: float
) -> torch.Tensor:
    """Brute-force ``W values`` for one image, float64, in row blocks: (3, H, W), (K, H, W) -> (K, N)."""
    _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    feats = torch.cat([torch.stack([xs, ys]) / sigma_xy, image.double() / sigma_rgb]).reshape(5, -1).T
    flat = values.double().reshape(values.shape[0], -1).T
    out = torch.empty_like(flat)
    squares = (feats * feats).sum(1)
    for start in range(0, feats.shape[0], 512):
        block = feats[start : start + 512]
        dist2 = (squares[start : start + 512, None] + squares[None] - 2.0 * block @ feats.T).clamp(min=0.0)
        out[start : start + 512] = torch.exp(-0.5 * dist2) @ flat
    return out.T


def accuracy(images: torch.Tensor, logits: torch.Tensor, scale: float, count: int) -> dict:
    """Lattice against brute force on the first ``count`` images, at ``scale``."""
    images, probs = images[:count].cpu(), torch.softmax(logits[:count].cpu(), dim=1)
    sigma_rgb, sigma_xy = 15.0, 100.0 * scale
    if scale != 1.0:
        images = F.interpolate(images, scale_factor=scale, mode="nearest", recompute_scale_factor=False)
        probs = F.interpolate(probs, scale_factor=scale, mode="bilinear", align_corners=False)
    approx = bilateral_filter(images, probs, sigma_rgb=sigma_rgb, sigma_xy=sigma_xy).double()
    errors, loss_errors = [], []
    for b in range(count):
        exact = exact_filter(images[b], probs[b], sigma_rgb, sigma_xy)
        ours = approx[b].reshape(exact.shape)
        errors.append(((ours - exact).abs() / exact).flatten())
        flat = probs[b].double().reshape(exact.shape)
        loss_errors.append(float((flat * ours).sum() / (flat * exact).sum() - 1.0))
    rel = torch.cat(errors)
    return {
        "accuracy_images": count,
        "ws_rel_error_median": float(rel.median()),
        "ws_rel_error_p99": float(rel.quantile(0.99)) if rel.numel() <= 2**24 else float(rel.max()),
        "loss_rel_error_max": max(abs(e) for e in loss_errors),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--images", choices=("natural", "noise"), default="natural")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--accuracy-images",
        type=int,
        default=0,
        help="also compare with brute force on this many images (slow)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be >= 1 and --warmup >= 0")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images = make_images(args.images, args.batch, args.size, args.seed).to(device)
    gen = torch.Generator().manual_seed(args.seed)
    coarse = torch.randn(args.batch, args.classes, 7, 7, generator=gen) * 2.0
    logits = F.interpolate(coarse, size=(args.size, args.size), mode="bilinear", align_corners=False).to(
        device
    )

    rows = [time_scale(images, logits, scale, args.warmup, args.repeat) for scale in args.scales]
    if args.accuracy_images > 0:
        for row in rows:
            row.update(accuracy(images, logits, row["scale"], min(args.accuracy_images, args.batch)))
    report = {
        "benchmark": "dense_crf_loss forward+backward",
        "batch": args.batch,
        "size": args.size,
        "classes": args.classes,
        "images": args.images,
        "repeat": args.repeat,
        "warmup": args.warmup,
        "device": device_name(device),
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "results": rows,
    }
    print(
        f"dense CRF loss, batch {args.batch} x {args.size}^2, K={args.classes}, {args.images} images, "
        f"{device.type}, {report['threads']} threads, load {report['load_average_1min']}"
    )
    header = ("scale", "pixels", "fwd s", "fwd+bwd s", "min s", "max s", "cpu s", "ms/img")
    print(" ".join(f"{name:>10}" for name in header))
    for row in rows:
        side = int(args.size * row["scale"])
        cells = (
            f"{row['scale']:.2f}",
            str(side * side),
            f"{row['forward_s']:.3f}",
            f"{row['forward_backward_s']:.3f}",
            f"{row['forward_backward_min_s']:.3f}",
            f"{row['forward_backward_max_s']:.3f}",
            f"{row['process_cpu_s']:.3f}",
            f"{1000 * row['forward_backward_s'] / args.batch:.1f}",
        )
        print(" ".join(f"{cell:>10}" for cell in cells))
    for row in rows:
        if "ws_rel_error_median" in row:
            print(
                f"scale {row['scale']:.2f}: W S vs brute force on {row['accuracy_images']} images: median "
                f"relative error {row['ws_rel_error_median']:.3f}, p99 {row['ws_rel_error_p99']:.3f}, "
                f"loss {row['loss_rel_error_max']:.3f}"
            )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
