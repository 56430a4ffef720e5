"""Time the WSOL box metrics: the straightforward per-threshold loop against fcam's sweep.

Example:
    python benchmarks/metrics.py --n 1000 --size 224 --seed 0 --json metrics.json

Generates ``--n`` score maps of four kinds, each with ground-truth boxes and top-1/top-5 flags:

- ``cam``: 1-3 Gaussian blobs on a 7/14/28 grid with a little noise, ReLU, bilinear upsampling,
  min-max normalisation (a baseline CAM);
- ``speckled``: the same on a 28 grid with strong noise (background speckle at low levels);
- ``fcam``: a full-resolution foreground probability, a steep sigmoid of a smooth field;
- ``noise``: noise-like maps, a constant CAM after bicubic resizing and min-max normalisation
  (a handful of grey levels, tens of thousands of contours) or blurred uniform noise (seconds per
  map for the loop).

For every map the reference loop (``fcam.metrics.reference``: ``cv2.threshold`` +
``cv2.findContours`` at each of the 1000 thresholds) and the sweep (``fcam.metrics.boxes.best_ious``)
are timed back to back after a warm-up; then ``BoxEvaluator`` scores all maps in batches (with its
input checks) and its metrics and curves are compared with the loop's: every difference must be 0.
PxAP is timed the same way on masks drawn from the maps. Times are wall-clock on one process;
the process's CPU time is reported as well, since a shared machine adds waiting to wall time.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from fcam.metrics import BoxEvaluator, MaskEvaluator
from fcam.metrics.boxes import best_ious
from fcam.metrics.protocol import thresholds
from fcam.metrics.reference import reference_accumulate, reference_best_ious, reference_pxap
from fcam.tracking import git_commit

KINDS = ("cam", "speckled", "fcam", "noise")
SHARES = (0.55, 0.25, 0.15, 0.05)
METRICS = ("max_box_acc", "max_box_acc_v2", "top1_loc", "top5_loc", "gt_known_loc")


def _blobs(rng: np.random.Generator, grid: int, count: int) -> np.ndarray:
    """(grid, grid) sum of ``count`` anisotropic Gaussian blobs."""
    yy, xx = np.mgrid[:grid, :grid].astype(np.float64)
    field = np.zeros((grid, grid))
    for _ in range(count):
        cx, cy = rng.uniform(0, grid, 2)
        sx, sy = rng.uniform(0.06, 0.3, 2) * grid
        angle = rng.uniform(0, np.pi)
        dx, dy = xx - cx, yy - cy
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        field += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return field


def _normalise(m: np.ndarray) -> np.ndarray:
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def make_map(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One (size, size) float64 map in [0, 1] of the given kind."""
    if kind in ("cam", "speckled"):
        grid = int(rng.choice([7, 14, 28])) if kind == "cam" else 28
        noise = rng.uniform(0, 0.03) if kind == "cam" else rng.uniform(0.05, 0.15)
        low = _blobs(rng, grid, int(rng.integers(1, 4 if kind == "cam" else 5)))
        low = np.maximum(low + rng.normal(0, noise, low.shape), 0)
        return _normalise(cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR))
    if kind == "fcam":
        field = _blobs(rng, 28, int(rng.integers(1, 4)))
        field = cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC)
        slope, level = rng.uniform(8, 30), rng.uniform(0.2, 0.6) * field.max()
        return 1.0 / (1.0 + np.exp(-slope * (field - level)))
    if rng.random() < 0.6:  # a constant CAM, bicubic-resized in float32: a few grey levels of rounding noise
        constant = np.full((7, 7), rng.uniform(0.1, 0.9), np.float32)
        resized = cv2.resize(constant, (size, size), interpolation=cv2.INTER_CUBIC)
        return _normalise(resized.astype(np.float64))
    return _normalise(cv2.GaussianBlur(rng.random((size, size)), (0, 0), rng.uniform(0.5, 1.0)))


def make_boxes(m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(k, 4) int64 inclusive ground-truth boxes: around the map's main region, jittered, sometimes two."""
    size = m.shape[0]
    fg = (m > rng.uniform(0.2, 0.6)).astype(np.uint8)
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n > 1:
        x, y, w, h, _ = stats[1 + int(np.argmax(stats[1:, 4]))]
        box = np.array([x, y, x + w - 1, y + h - 1]) + rng.integers(-10, 11, 4)
    else:
        x0, y0 = rng.integers(0, size // 2, 2)
        box = np.array([x0, y0, x0 + size // 3, y0 + size // 3])
    boxes = [box]
    if rng.random() < 0.2:
        x0, y0 = rng.integers(0, size - 20, 2)
        boxes.append(np.array([x0, y0, x0 + rng.integers(10, 80), y0 + rng.integers(10, 80)]))
    out = np.clip(np.array(boxes), 0, size - 1)
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2])
    return out.astype(np.int64)


def make_data(n: int, size: int, seed: int) -> dict:
    """Maps, boxes, masks, flags and kinds of ``n`` synthetic images."""
    rng = np.random.default_rng(seed)
    counts = np.floor(np.array(SHARES) * n).astype(int)
    counts[0] += n - counts.sum()
    kinds = np.repeat(np.array(KINDS), counts)
    maps = np.stack([make_map(k, rng, size) for k in kinds])
    boxes = [make_boxes(m, rng) for m in maps]
    top5 = rng.random(n) < 0.9
    top1 = top5 & (rng.random(n) < 0.8)
    masks = np.stack([m > rng.uniform(0.3, 0.7) for m in maps])
    ignore = np.zeros_like(masks)
    for i in range(n):
        x0, y0 = rng.integers(0, size - 40, 2)
        ignore[i, y0 : y0 + 40, x0 : x0 + 40] = rng.random() < 0.5
    return {"kinds": kinds, "maps": maps, "boxes": boxes, "top1": top1, "top5": top5, "masks": masks,
            "ignore": ignore}


def time_maps(data: dict, taus: np.ndarray, step: float, warmup: int, batch: int) -> dict:
    """Wall and CPU seconds of both paths per map (back to back), and of BoxEvaluator per batch,
    right after the loop ran on that batch's maps (same machine load); the per-threshold IoUs."""
    maps, boxes = data["maps"], data["boxes"]
    for i in range(min(warmup, len(maps))):
        reference_best_ious(maps[i], boxes[i], taus)
        best_ious(maps[i : i + 1], boxes[i : i + 1], taus)
    n = len(maps)
    out: dict = {key: np.empty(n) for key in ("ref_s", "fast_s", "ref_cpu_s", "fast_cpu_s")}
    ious = {key: np.empty((n, len(taus))) for key in ("ref_largest", "ref_all", "fast_largest", "fast_all")}
    evaluator = BoxEvaluator(step=step) if maps.shape[1:] == (224, 224) else None
    out["evaluator_s"] = out["evaluator_cpu_s"] = 0.0
    for first in range(0, n, batch):
        for i in range(first, min(first + batch, n)):
            start, cpu = time.perf_counter(), time.process_time()
            ious["ref_largest"][i], ious["ref_all"][i] = reference_best_ious(maps[i], boxes[i], taus)
            middle, cpu_middle = time.perf_counter(), time.process_time()
            largest, every = best_ious(maps[i : i + 1], boxes[i : i + 1], taus)
            end, cpu_end = time.perf_counter(), time.process_time()
            ious["fast_largest"][i], ious["fast_all"][i] = largest[0], every[0]
            out["ref_s"][i], out["fast_s"][i] = middle - start, end - middle
            out["ref_cpu_s"][i], out["fast_cpu_s"][i] = cpu_middle - cpu, cpu_end - cpu_middle
        if evaluator is not None:
            sl = slice(first, first + batch)
            start, cpu = time.perf_counter(), time.process_time()
            evaluator.accumulate(maps[sl], boxes[sl], data["top1"][sl], data["top5"][sl])
            out["evaluator_s"] += time.perf_counter() - start
            out["evaluator_cpu_s"] += time.process_time() - cpu
    out["evaluator"] = evaluator
    return {**out, **ious}


def summarise(timing: dict, kinds: np.ndarray) -> list[dict]:
    """One row per kind and one for all maps."""
    rows = []
    for kind in (*KINDS, "all"):
        sel = np.ones(len(kinds), bool) if kind == "all" else kinds == kind
        if not sel.any():
            continue
        ref, fast = timing["ref_s"][sel], timing["fast_s"][sel]
        rows.append({
            "kind": kind, "maps": int(sel.sum()),
            "reference_s": float(ref.sum()), "sweep_s": float(fast.sum()),
            "speedup": float(ref.sum() / fast.sum()),
            "reference_median_ms": float(np.median(ref) * 1e3),
            "sweep_median_ms": float(np.median(fast) * 1e3),
            "median_speedup": float(np.median(ref / fast)),
            "cpu_speedup": float(timing["ref_cpu_s"][sel].sum() / timing["fast_cpu_s"][sel].sum()),
        })
    return rows


def evaluate(data: dict, taus: np.ndarray, timing: dict) -> dict:
    """BoxEvaluator's metrics and curves against the loop's accumulation of its own IoUs."""
    reference = reference_accumulate(timing["ref_largest"], timing["ref_all"], taus,
                                     top1_correct=data["top1"], top5_correct=data["top5"])
    reference["top1_loc_curve"], reference["top5_loc_curve"] = reference["top1_loc"], reference["top5_loc"]
    reference["top1_loc"], reference["top5_loc"] = reference["top1_loc_max"], reference["top5_loc_max"]
    reference["gt_known_loc"] = reference["max_box_acc"]
    out = {"iou_max_abs_diff": float(max(np.abs(timing["ref_largest"] - timing["fast_largest"]).max(),
                                         np.abs(timing["ref_all"] - timing["fast_all"]).max()))}
    if timing["evaluator"] is None:
        return out  # the evaluators take protocol-size maps only: the IoU comparison stands
    start = time.perf_counter()
    result = timing["evaluator"].compute()
    out["evaluator_s"] = timing["evaluator_s"] + time.perf_counter() - start
    out["evaluator_cpu_s"] = timing["evaluator_cpu_s"]
    out["loop_s"], out["loop_cpu_s"] = float(timing["ref_s"].sum()), float(timing["ref_cpu_s"].sum())
    curves = result.curves()
    diffs = {name: abs(getattr(result, name) - reference[name]) for name in METRICS}
    diffs["curves"] = max(
        float(np.abs(np.array(curves["box_acc_largest"]) - reference["box_acc_largest"]).max()),
        *(float(np.abs(np.array(curves["box_acc"][str(iou)]) - reference["box_acc"][iou]).max())
          for iou in (30, 50, 70)),
        float(np.abs(np.array(curves["top1_loc"]) - reference["top1_loc_curve"]).max()),
        float(np.abs(np.array(curves["top5_loc"]) - reference["top5_loc_curve"]).max()),
    )
    out["metrics"] = {
        name: {"reference": reference[name], "evaluator": getattr(result, name)} for name in METRICS
    }
    out["max_abs_diff"] = diffs
    return out


def time_pxap(data: dict, step: float, batch: int) -> dict:
    """PxAP of all maps: wsolevaluation's per-map np.histogram against MaskEvaluator in batches."""
    maps, masks, ignore = data["maps"], data["masks"], data["ignore"]
    start = time.perf_counter()
    ref_value, _, _ = reference_pxap(maps, masks, ignore, step=step)
    middle = time.perf_counter()
    if maps.shape[1:] != (224, 224):
        return {"reference_s": middle - start, "pxap": ref_value}
    evaluator = MaskEvaluator(step=step)
    for first in range(0, len(maps), batch):
        sl = slice(first, first + batch)
        evaluator.accumulate(maps[sl], masks[sl], ignore[sl])
    value = evaluator.compute().pxap
    end = time.perf_counter()
    return {"reference_s": middle - start, "evaluator_s": end - middle,
            "speedup": (middle - start) / (end - middle),
            "reference": ref_value, "evaluator": value, "abs_diff": abs(value - ref_value)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of maps")
    parser.add_argument("--size", type=int, default=224, help="map side (the protocol's is 224)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step", type=float, default=0.001, help="threshold spacing")
    parser.add_argument("--batch", type=int, default=32, help="evaluator batch size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed maps before timing")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    data = make_data(args.n, args.size, args.seed)
    taus = thresholds(args.step)
    timing = time_maps(data, taus, args.step, args.warmup, args.batch)
    rows = summarise(timing, data["kinds"])
    checks = evaluate(data, taus, timing)
    pxap = time_pxap(data, args.step, args.batch)

    print(f"{'kind':<9} {'maps':>5} {'loop s':>9} {'sweep s':>9} {'speed-up':>9} "
          f"{'loop ms/map':>12} {'sweep ms/map':>13} {'median x':>9} {'cpu x':>7}")
    for r in rows:
        print(f"{r['kind']:<9} {r['maps']:>5} {r['reference_s']:>9.2f} {r['sweep_s']:>9.3f} "
              f"{r['speedup']:>9.1f} "
              f"{r['reference_median_ms']:>12.2f} {r['sweep_median_ms']:>13.3f} {r['median_speedup']:>9.1f} "
              f"{r['cpu_speedup']:>7.1f}")
    print(f"largest |IoU difference| over maps and thresholds: {checks['iou_max_abs_diff']}")
    if "metrics" in checks:
        print(f"BoxEvaluator, all maps in batches of {args.batch}: {checks['evaluator_s']:.2f} s, "
              f"loop {checks['loop_s']:.2f} s: {checks['loop_s'] / checks['evaluator_s']:.1f}x "
              f"(CPU {checks['loop_cpu_s'] / checks['evaluator_cpu_s']:.1f}x)")
        print(f"{'metric':<15} {'loop':>10} {'evaluator':>10} {'|diff|':>8}")
        for name, pair in checks["metrics"].items():
            print(f"{name:<15} {pair['reference']:>10.4f} {pair['evaluator']:>10.4f} "
                  f"{checks['max_abs_diff'][name]:>8.2g}")
        print(f"{'curves':<15} {'':>10} {'':>10} {checks['max_abs_diff']['curves']:>8.2g}")
    if "evaluator_s" in pxap:
        print(f"PxAP: loop {pxap['reference_s']:.3f} s, MaskEvaluator {pxap['evaluator_s']:.3f} s "
              f"({pxap['speedup']:.1f}x), PxAP {pxap['evaluator']:.4f}, |diff| {pxap['abs_diff']:.2g}")
    if args.json is not None:
        report = {
            "device": "cpu", "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
            "git_commit": git_commit(), "n": args.n, "size": args.size, "seed": args.seed, "step": args.step,
            "rows": rows, **checks, "pxap": pxap,
        }
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
