"""Host-side costs of a network job: data loading per image and localisation scoring per map.

fcam's training and evaluation loops read their batches with ``DataLoader(num_workers=0)``: every
image is decoded, resized and cropped in the job's own process, between two GPU steps, and every
validation map is scored on the CPU (MaxBoxAcc or PxAP) before the next epoch. These costs add to
the GPU's time per image rather than overlapping with it, so ``benchmarks/project_paper.py``
adds them to the measured GPU throughputs. Measured here:

- loading, ms per image, through a ``DataLoader`` (batch ``--batch``, no workers) over
  :class:`fcam.data.datasets.WSOLDataset` on ``--images`` JPEG files of ``--image-size`` pixels
  (500 x 375 by default, a typical CUB photograph) written to a temporary folder (so read from
  the page cache, not from disk): ``train`` (resize 256, random crop 224 and flip: the classifier's
  epochs), ``train_cam`` (the same with a cached 28 x 28 CAM: the decoder's epochs) and ``eval``
  (resize 224: validation and test passes);
- scoring, ms per map: :class:`fcam.metrics.BoxEvaluator` at the validation step 0.004 and the
  test step 0.001, and :class:`fcam.metrics.MaskEvaluator` at 0.001 (accumulate and compute), on
  224 x 224 maps upsampled from 7 x 7 random fields and min-max normalised (a few blobs, like
  baseline CAMs), with one random ground-truth box (boxes) or a random disc (masks) per map. Reading
  OpenImages' mask PNGs is not included.

Each measurement is timed ``--repeats`` times after ``--warmup`` untimed runs; the median is reported.

Example:
    python benchmarks/host.py --images 32 --maps 64 --threads 8 --json host.json
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fcam.data.datasets import WSOLDataset
from fcam.data.metadata import read_split
from fcam.io import save_json
from fcam.metrics import BoxEvaluator, MaskEvaluator
from fcam.timing import benchmark_parser, device_name, parse_benchmark_args, provenance, time_run

logger = logging.getLogger("benchmarks.host")

#: (name, WSOLDataset arguments besides the metadata) of each loading measurement.
TRANSFORMS: dict[str, dict[str, Any]] = {
    "train": {"train": True, "resize_size": 256, "crop_size": 224},
    "train_cam": {"train": True, "resize_size": 256, "crop_size": 224, "cams": True},
    "eval": {"train": False, "resize_size": 224, "crop_size": 224},
}
#: (name, evaluator factory) of each scoring measurement; names are ``<kind>@<step>``.
SCORINGS: dict[str, Callable[[], Any]] = {
    "boxes@0.004": lambda: BoxEvaluator(step=0.004),
    "boxes@0.001": lambda: BoxEvaluator(step=0.001),
    "masks@0.001": lambda: MaskEvaluator(step=0.001),
}


def write_images(folder: Path, count: int, width: int, height: int, seed: int = 0) -> Path:
    """Write ``count`` JPEGs (smooth colour fields plus noise) and metadata; returns the metadata folder."""
    rng = np.random.default_rng(seed)
    root, meta = folder / "images", folder / "metadata"
    root.mkdir(parents=True, exist_ok=True)
    meta.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(count):
        coarse = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        name = f"{i:04d}.jpg"
        if not cv2.imwrite(str(root / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"could not write {root / name}")
        ids.append(name)
    (meta / "image_ids.txt").write_text("".join(f"{n}\n" for n in ids))
    (meta / "class_labels.txt").write_text("".join(f"{n},{i % 2}\n" for i, n in enumerate(ids)))
    return meta


def time_loading(
    meta_dir: Path, root: Path, *, batch: int, device: torch.device, repeats: int, warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Milliseconds per image of one pass of a DataLoader (no workers) over the split, per transform."""
    meta = read_split(meta_dir, root)
    n = len(meta.image_ids)
    cams = torch.rand(n, 28, 28, generator=torch.Generator().manual_seed(0))
    out = {}
    for name, kwargs in TRANSFORMS.items():
        args = {**kwargs, "cams": cams if kwargs.get("cams") else None}
        dataset = WSOLDataset(meta, **args)

        def one_pass(dataset: WSOLDataset = dataset) -> None:
            for _ in DataLoader(dataset, batch_size=batch):
                pass

        seconds = time_run(one_pass, device, repeats=repeats, warmup=warmup, clock=clock)
        out[name] = 1000.0 * seconds / n
        logger.info("loading %s: %.2f ms/image", name, out[name])
    return out


def make_maps(count: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(count, 224, 224) float64 CAM-like maps in [0, 1] (7 x 7 random fields, bilinearly upsampled,
    min-max normalised), one random box each, and disc masks."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 1, 7, 7, generator=gen)
    up = F.interpolate(coarse, size=(224, 224), mode="bilinear", align_corners=False)[:, 0].double()
    lo = up.flatten(1).min(1).values[:, None, None]
    hi = up.flatten(1).max(1).values[:, None, None]
    maps = ((up - lo) / (hi - lo)).numpy()
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(count):
        x0, y0 = rng.integers(0, 112, 2)
        x1, y1 = x0 + rng.integers(40, 112), y0 + rng.integers(40, 112)
        boxes.append(np.array([[x0, y0, x1, y1]], dtype=np.int64))
    yy, xx = np.mgrid[:224, :224]
    centres = rng.integers(56, 168, (count, 2))
    masks = np.stack([(yy - cy) ** 2 + (xx - cx) ** 2 < 60**2 for cy, cx in centres])
    return maps, boxes, masks


def time_scoring(
    count: int, *, device: torch.device, repeats: int, warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Milliseconds per map of accumulating ``count`` maps and computing the metric, per evaluator."""
    maps, boxes, masks = make_maps(count)
    out = {}
    for name, factory in SCORINGS.items():

        def score(factory: Callable[[], Any] = factory, name: str = name) -> None:
            evaluator = factory()
            if name.startswith("boxes"):
                evaluator.accumulate(maps, boxes)
            else:
                evaluator.accumulate(maps, masks)
            evaluator.compute()

        seconds = time_run(score, device, repeats=repeats, warmup=warmup, clock=clock)
        out[name] = 1000.0 * seconds / count
        logger.info("scoring %s: %.2f ms/map", name, out[name])
    return out


def format_table(loading: dict[str, float], scoring: dict[str, float]) -> str:
    """Two blocks: ms per image of each loading transform, ms per map of each scoring."""
    lines = [f"{'loading':<14} {'ms/image':>9}"]
    lines += [f"{name:<14} {value:>9.2f}" for name, value in loading.items()]
    lines += [f"{'scoring':<14} {'ms/map':>9}"]
    lines += [f"{name:<14} {value:>9.2f}" for name, value in scoring.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32, help="JPEG files to load per pass")
    parser.add_argument("--image-size", type=int, nargs=2, default=[500, 375], metavar=("W", "H"),
                        help="size of the JPEG files")
    parser.add_argument("--batch", type=int, default=32, help="DataLoader batch size")
    parser.add_argument("--maps", type=int, default=64, help="maps to score per run")
    args, _ = parse_benchmark_args(parser, argv)  # host costs: always the CPU
    if args.images < 1 or args.maps < 1 or args.batch < 1 or min(args.image_size) < 224:
        parser.error("--images, --maps and --batch must be >= 1, --image-size at least 224 x 224")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="fcam-host-") as tmp:
        meta = write_images(Path(tmp), args.images, *args.image_size)
        loading = time_loading(meta, Path(tmp) / "images", batch=args.batch, device=torch.device("cpu"),
                               repeats=args.repeats, warmup=args.warmup)
    scoring = time_scoring(args.maps, device=torch.device("cpu"), repeats=args.repeats, warmup=args.warmup)
    width, height = args.image_size
    print(f"host costs on {device_name(torch.device('cpu'))}, {torch.get_num_threads()} threads, "
          f"{args.images} JPEGs of {width}x{height}, {args.maps} maps")
    print(format_table(loading, scoring))
    if args.json is not None:
        report = {**provenance(torch.device("cpu"), args), "benchmark": "host costs",
                  "loading_ms_per_image": loading, "scoring_ms_per_map": scoring}
        save_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
