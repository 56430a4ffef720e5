"""Project the wall time of a whole preset (the paper's by default) on one card from measured throughputs.

Reads the JSON reports of the other benchmarks, measured on the card in question:

- ``--train`` (``benchmarks/train.py``, required): images/s of one SGD step of each phase and backbone;
- ``--cams`` (``benchmarks/cams.py``): images/s of the batched CAMs of each backbone and method
  (the classifier's validation passes, the CAM cache);
- ``--inference`` (``benchmarks/inference.py``): images/s of the F-CAM forward at the largest batch
  measured (the decoder's validation passes, the test evaluation);
- ``--host`` (``benchmarks/host.py``): loading ms/image and scoring ms/map on the card's host;
- ``--crf`` (``benchmarks/crf.py``): reported only; the CRF is inside the decoder step already.

and the preset (``--params``, default ``workflow/presets/paper.yaml``, with ``--set`` overrides)
through :func:`fcam.pipeline.params.load_params` and :class:`fcam.pipeline.stages.Pipeline`: the
jobs of every stage, each job's epochs with its dataset's and backbone's overrides, and the split
sizes of :data:`fcam.data.sources.DATASETS` (or of the ``synth`` section). Per network job::

    classifier  E_c * n_train' * (1/r_clf + load_train)
                + (E_c + 1) * n_val * (load_eval + sum_m (1/r_cam(m) + score_val))
    cams        n_train * (load_eval + (256/224)^2 / r_cam) + n_test * (load_eval + 1/r_cam)
    decoder     E_d * n_train' * (1/r_dec + load_train_cam) + E_d * n_val * (1/r_inf + load_eval + score_val)
    evaluate    2 * n_test * (1/r_inf + load_eval + score_test)         (best and last checkpoint)

plus a per-job overhead, where ``n_train'`` is the train split rounded down to whole batches
(``drop_last``), ``E + 1`` counts the epoch-0 validation of ImageNet-initialised classifiers, and
``(256/224)^2`` scales the CAM cost to the train cache's 256-pixel images. Network jobs run one at
a time on the card (Snakemake's ``gpu=1`` resource); the jobs that use no network
(``evaluate_baseline``: scoring only, ``select``, reports) run on the other cores alongside and
are listed but not added. Every assumption is written into the output (``assumptions``), and
every throughput the projection needed but did not find is listed under ``missing`` (its cost
counted as 0: the total is then a lower bound).

Example:
    python benchmarks/project_paper.py --train train.json --cams cams.json --inference inference.json \\
        --host host.json --json projection.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcam.constants import DATASET_KINDS, MASK_VAL_STEP
from fcam.data.sources import DATASETS
from fcam.io import save_json
from fcam.pipeline.params import Params, load_params, parse_assignment
from fcam.pipeline.stages import Pipeline
from fcam.tracking import git_commit

PAPER_PRESET = Path(__file__).resolve().parents[1] / "workflow" / "presets" / "paper.yaml"
#: Estimated fixed cost of one network job (s): interpreter and imports, model build, ImageNet
#: weights, dataset metadata, checkpoints, MLflow run. Not measured; ``--job-overhead``.
JOB_OVERHEAD_S = 20.0
#: The stages whose jobs take the card, with a cost model below.
PARTS = ("gpu", "loading", "scoring", "overhead")
GPU_STAGES = ("classifier", "cams", "decoder", "evaluate_fcam", "ablation_decoder", "ablation_evaluate")
#: Stages that use no network and whose cost is modelled (scoring only).
CPU_STAGES = ("evaluate_baseline",)


@dataclass(frozen=True)
class Measurements:
    """Throughputs measured on one card (images/s) and on its host (ms).

    Attributes:
        device: the card's name, as the benchmarks recorded it.
        train: (backbone, phase) -> images/s of one training step; ``train_size``/``train_batch``
            the crop side and batch it was measured at.
        cams: (backbone, method) -> images/s of a batched CAM pass.
        inference: backbone -> images/s of the F-CAM forward; ``inference_batch`` its batch.
        loading: transform (``train``, ``train_cam``, ``eval``) -> ms per image.
        scoring: ``<kind>@<step>`` -> ms per map.
        crf: the CRF benchmark's rows (reference only).
        sources: which file each measurement came from.
    """

    device: str
    train: Mapping[tuple[str, str], float]
    train_size: int | None = None
    train_batch: int | None = None
    cams: Mapping[tuple[str, str], float] = field(default_factory=dict)
    inference: Mapping[str, float] = field(default_factory=dict)
    inference_batch: int | None = None
    loading: Mapping[str, float] = field(default_factory=dict)
    scoring: Mapping[str, float] = field(default_factory=dict)
    crf: Sequence[Mapping[str, Any]] = ()
    sources: Mapping[str, str] = field(default_factory=dict)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{path}: cannot read the benchmark report: {exc}") from exc


def load_measurements(
    train: Path,
    *,
    cams: Path | None = None,
    inference: Path | None = None,
    host: Path | None = None,
    crf: Path | None = None,
) -> Measurements:
    """Read the benchmarks' JSON reports (only ``train`` is required)."""
    report = _read(train)
    rows = report["results"]
    out: dict[str, Any] = {
        "device": report.get("device_name", report.get("device", "unknown")),
        "train": {(r["backbone"], r["phase"]): r["images_per_s"] for r in rows},
        "train_size": rows[0]["size"] if rows else None,
        "train_batch": rows[0]["batch"] if rows else None,
        "sources": {"train": str(train)},
    }
    if cams is not None:
        rows = _read(cams)["results"]
        batched = [r for r in rows if r["mode"] == "batched"]
        out["cams"] = {(r["backbone"], r["method"]): r["images_per_s"] for r in batched}
        out["sources"]["cams"] = str(cams)
    if inference is not None:
        rows = _read(inference)["results"]
        if rows:
            batch = max(r["batch"] for r in rows)
            out["inference"] = {r["backbone"]: r["images_per_s"] for r in rows if r["batch"] == batch}
            out["inference_batch"] = batch
        out["sources"]["inference"] = str(inference)
    if host is not None:
        data = _read(host)
        out["loading"] = data["loading_ms_per_image"]
        out["scoring"] = data["scoring_ms_per_map"]
        out["sources"]["host"] = str(host)
    if crf is not None:
        data = _read(crf)
        out["crf"] = [{**r, "batch": data.get("batch"), "size": data.get("size")} for r in data["results"]]
        out["sources"]["crf"] = str(crf)
    return Measurements(**out)


def split_sizes_of(params: Params) -> dict[str, dict[str, int]]:
    """Images per split of every dataset of the parameters (real: DATASETS; synthetic: ``synth``)."""
    sizes = {}
    for ds in params.datasets:
        if ds in DATASETS:
            sizes[ds] = dict(DATASETS[ds].split_sizes)
        else:
            section = params["synth"][ds]
            sizes[ds] = {split: int(section[split]) for split in ("train", "val", "test")}
    return sizes


class _Costs:
    """Per-image costs in seconds, recording what was needed but not measured."""

    def __init__(self, measured: Measurements) -> None:
        self.m = measured
        self.missing: set[str] = set()

    def _rate(self, table: Mapping[Any, float], key: Any, what: str) -> float:
        rate = table.get(key)
        if not rate:
            self.missing.add(what)
            return 0.0
        return 1.0 / rate

    def train(self, backbone: str, phase: str) -> float:
        return self._rate(self.m.train, (backbone, phase), f"train.py: {backbone} {phase}")

    def cam(self, backbone: str, method: str) -> float:
        return self._rate(self.m.cams, (backbone, method), f"cams.py: {backbone} {method} batched")

    def inference(self, backbone: str) -> float:
        return self._rate(self.m.inference, backbone, f"inference.py: {backbone}")

    def load(self, transform: str) -> float:
        if transform not in self.m.loading:
            self.missing.add(f"host.py: loading {transform}")
            return 0.0
        return self.m.loading[transform] / 1000.0

    def score(self, kind: str, step: float) -> float:
        key = f"{kind}@{step:g}"
        if key in self.m.scoring:
            return self.m.scoring[key] / 1000.0
        same_kind = {k: v for k, v in self.m.scoring.items() if k.startswith(f"{kind}@")}
        if not same_kind:
            self.missing.add(f"host.py: scoring {key}")
            return 0.0
        nearest = min(same_kind, key=lambda k: abs(float(k.split("@")[1]) - step))
        return same_kind[nearest] / 1000.0


def _job_cost(
    pipeline: Pipeline, stage: str, w: Mapping[str, str], sizes: Mapping[str, Mapping[str, int]], c: _Costs
) -> dict[str, float]:
    """Seconds of one job, by part: ``gpu`` (network passes), ``loading``, ``scoring``."""
    p = pipeline.params
    ds, backbone = w["ds"], w["backbone"]
    n = sizes[ds]
    kind = DATASET_KINDS[ds]
    val_step = p["evaluate"]["val_step"] if kind == "boxes" else MASK_VAL_STEP
    test_step = p["evaluate"]["step"]
    if stage == "classifier":
        sec = p.section("classifier", ds=ds, backbone=backbone)
        epochs, batch = int(sec["epochs"]), int(sec["batch_size"])
        seen = max(n["train"] // batch, 1) * batch if n["train"] >= batch else n["train"]
        passes = epochs + (1 if sec["pretrained"] != "none" else 0)
        methods = [w["method"]] if "method" in w else p.methods
        return {
            "gpu": epochs * seen * c.train(backbone, "classifier")
            + passes * n["val"] * sum(c.cam(backbone, m) for m in methods),
            "loading": epochs * seen * c.load("train") + passes * n["val"] * c.load("eval"),
            "scoring": passes * n["val"] * len(methods) * c.score(kind, val_step),
        }
    if stage == "cams":
        resize, crop = p["images"]["resize_size"], p["images"]["crop_size"]
        cam = c.cam(backbone, w["method"])
        return {
            "gpu": n["train"] * cam * (resize / crop) ** 2 + n["test"] * cam,
            "loading": (n["train"] + n["test"]) * c.load("eval"),
            "scoring": 0.0,
        }
    if stage in ("decoder", "ablation_decoder"):
        sec = p.section("decoder", ds=ds, backbone=backbone)
        epochs, batch = int(sec["epochs"]), int(sec["batch_size"])
        seen = max(n["train"] // batch, 1) * batch if n["train"] >= batch else n["train"]
        return {
            "gpu": epochs * seen * c.train(backbone, "decoder") + epochs * n["val"] * c.inference(backbone),
            "loading": epochs * seen * c.load("train_cam") + epochs * n["val"] * c.load("eval"),
            "scoring": epochs * n["val"] * c.score(kind, val_step),
        }
    if stage in ("evaluate_fcam", "ablation_evaluate"):
        return {
            "gpu": 2 * n["test"] * c.inference(backbone),
            "loading": 2 * n["test"] * c.load("eval"),
            "scoring": 2 * n["test"] * c.score(kind, test_step),
        }
    if stage == "evaluate_baseline":
        return {"gpu": 0.0, "loading": 0.0, "scoring": n["test"] * c.score(kind, test_step)}
    raise KeyError(stage)


def assumptions(measured: Measurements, params: Params, job_overhead_s: float) -> list[str]:
    """What the projection measured, what it estimated and how it schedules, in words."""
    crop, batch = params["images"]["crop_size"], params["classifier"]["batch_size"]
    notes = [
        f"measured on {measured.device}: images/s of one training step per phase and backbone "
        f"(benchmarks/train.py at {measured.train_size} px, batch {measured.train_batch}; random weights, "
        "smooth random images; the decoder step includes seeds, PCE, dense CRF and size loss)",
        "measured: batched CAM images/s per backbone and method (benchmarks/cams.py) for the classifier's "
        "validation passes and the CAM cache; F-CAM forward images/s at batch "
        f"{measured.inference_batch} (benchmarks/inference.py) for the decoder's validation and the test "
        "evaluation",
        "measured on the host (benchmarks/host.py): DataLoader loading ms/image (JPEGs of one size, from "
        "the page cache) and MaxBoxAcc/PxAP scoring ms/map; both datasets assumed to load like those JPEGs",
        "serial, not overlapped: fcam's loaders have no workers (num_workers=0), so loading and scoring "
        "add to the GPU time of every image",
        "one network job at a time on the card (Snakemake resource gpu=1); CPU-only jobs "
        "(evaluate_baseline, select, reports, figures) run on other cores alongside and add nothing",
        f"estimated: {job_overhead_s:g} s of fixed cost per network job (start-up, model build, ImageNet "
        "weights, checkpoints, MLflow); not measured",
        "estimated: the train-split CAM cache at resize_size costs the 224-px CAM time x (resize/crop)^2",
        "upper bounds: ablation decoders cost a full-loss decoder step (variants without the CRF are "
        "cheaper); a shared classifier's validation costs the sum of its methods' CAM passes",
        "throughput taken as independent of the dataset and the epoch (same crop size, no early stop); "
        "validation: classifier E+1 passes (epoch 0 with ImageNet weights), decoder E passes",
        "not included: download and prepare (network and disk bound), the CRF benchmark (inside the "
        "decoder step already), Python garbage collection and checkpoint writing beyond the overhead",
    ]
    if measured.train_size != crop or measured.train_batch != batch:
        notes.insert(0, f"WARNING: throughputs measured at {measured.train_size} px, batch "
                     f"{measured.train_batch}; the preset trains at {crop} px, batch {batch}: "
                     "this projection does not describe the preset")
    return notes


def project(
    pipeline: Pipeline,
    measured: Measurements,
    *,
    split_sizes: Mapping[str, Mapping[str, int]] | None = None,
    job_overhead_s: float = JOB_OVERHEAD_S,
) -> dict[str, Any]:
    """The projected wall time of every job of the pipeline on one card.

    Args:
        pipeline: the preset's stages and jobs.
        measured: the card's throughputs.
        split_sizes: ds -> split -> images; default :func:`split_sizes_of` the parameters.
        job_overhead_s: fixed seconds added to every network job.

    Returns:
        ``stages``: one row per (stage, ds): ``jobs``, ``seconds`` (all jobs) and its ``gpu``,
        ``loading``, ``scoring``, ``overhead`` parts, ``on_card``; ``total_s`` (the network
        jobs, one after another), ``cpu_side_s`` (jobs beside them), ``job_counts`` (every
        stage, modelled or not), ``not_modelled``, ``missing``, ``assumptions``.
    """
    sizes = split_sizes if split_sizes is not None else split_sizes_of(pipeline.params)
    costs = _Costs(measured)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    counts = {name: len(pipeline.jobs(name)) for name in pipeline.stages}
    for name in pipeline.stages:
        if name not in GPU_STAGES and name not in CPU_STAGES:
            continue
        on_card = name in GPU_STAGES
        for w in pipeline.jobs(name):
            parts = _job_cost(pipeline, name, w, sizes, costs)
            parts["overhead"] = job_overhead_s if on_card else 0.0
            row = rows.setdefault((name, w["ds"]), {
                "stage": name, "ds": w["ds"], "jobs": 0, "on_card": on_card,
                "gpu": 0.0, "loading": 0.0, "scoring": 0.0, "overhead": 0.0,
            })
            row["jobs"] += 1
            for key, value in parts.items():
                row[key] += value
    for row in rows.values():
        row["seconds"] = row["gpu"] + row["loading"] + row["scoring"] + row["overhead"]
    stages = list(rows.values())
    total = sum(r["seconds"] for r in stages if r["on_card"])
    return {
        "preset": pipeline.params["preset"],
        "params": pipeline.params.source,
        "device": measured.device,
        "split_sizes": {ds: dict(s) for ds, s in sizes.items()},
        "job_counts": counts,
        "stages": stages,
        "total_s": total,
        "total_h": total / 3600.0,
        "total_days": total / 86400.0,
        "parts_s": {k: sum(r[k] for r in stages if r["on_card"]) for k in PARTS},
        "cpu_side_s": sum(r["seconds"] for r in stages if not r["on_card"]),
        "not_modelled": sorted(n for n in pipeline.stages if n not in GPU_STAGES and n not in CPU_STAGES),
        "missing": sorted(costs.missing),
        "lower_bound": bool(costs.missing),
        "crf": list(measured.crf),
        "sources": dict(measured.sources),
        "job_overhead_s": job_overhead_s,
        "assumptions": assumptions(measured, pipeline.params, job_overhead_s),
    }


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}"


def format_table(projection: Mapping[str, Any]) -> str:
    """Jobs and hours per (stage, dataset), the total, its parts, what is missing and assumed."""
    lines = [f"projected wall time of preset {projection['preset']} on one {projection['device']}",
             "{:<18} {:<12} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8}".format(
                 "stage", "ds", "jobs", "h/job", "total h", "gpu h", "load h", "score h")]
    for r in projection["stages"]:
        where = "" if r["on_card"] else "  (CPU, alongside)"
        lines.append(f"{r['stage']:<18} {r['ds']:<12} {r['jobs']:>5} {r['seconds'] / r['jobs'] / 3600:>9.2f} "
                     f"{_hours(r['seconds']):>8} {_hours(r['gpu']):>8} {_hours(r['loading']):>8} "
                     f"{_hours(r['scoring']):>8}{where}")
    parts = projection["parts_s"]
    bound = " (LOWER BOUND: throughputs missing)" if projection["lower_bound"] else ""
    lines.append(f"total on the card: {projection['total_h']:.1f} h = {projection['total_days']:.1f} days"
                 f"{bound}; GPU {_hours(parts['gpu'])} h, loading {_hours(parts['loading'])} h, scoring "
                 f"{_hours(parts['scoring'])} h, job overhead {_hours(parts['overhead'])} h")
    counts = projection["job_counts"]
    lines.append("jobs: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if projection["missing"]:
        lines.append("missing (counted as 0): " + "; ".join(projection["missing"]))
    lines.append("assumptions:")
    lines += [f"  - {a}" for a in projection["assumptions"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="benchmarks/train.py JSON")
    parser.add_argument("--cams", type=Path, help="benchmarks/cams.py JSON")
    parser.add_argument("--inference", type=Path, help="benchmarks/inference.py JSON")
    parser.add_argument("--host", type=Path, help="benchmarks/host.py JSON")
    parser.add_argument("--crf", type=Path, help="benchmarks/crf.py JSON (reported only)")
    parser.add_argument("--params", type=Path, default=PAPER_PRESET, help="the preset")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset key (as fcam --set), e.g. to restrict the backbones")
    parser.add_argument("--job-overhead", type=float, default=JOB_OVERHEAD_S,
                        help="fixed seconds per network job (estimated)")
    parser.add_argument("--json", type=Path, default=None, help="write the projection here")
    args = parser.parse_args(argv)
    overrides = dict(parse_assignment(text) for text in args.set)
    pipeline = Pipeline(load_params(args.params, overrides or None))
    measured = load_measurements(args.train, cams=args.cams, inference=args.inference, host=args.host,
                                 crf=args.crf)
    projection = project(pipeline, measured, job_overhead_s=args.job_overhead)
    print(format_table(projection))
    if args.json is not None:
        save_json({**projection, "git_commit": git_commit()}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
