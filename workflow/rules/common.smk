# Config validation, wildcard constraints, input functions and target lists.
# The other rule files hold only rules; all logic lives in the fcam package.
import os
import shutil
from pathlib import Path

from fcam.config import validate_params
from fcam.constants import CAM_METHODS, DATASET_KINDS


validate_params(config, Path(workflow.basedir) / "workflow/schemas/params.schema.yaml")

DATA = config["data_root"]
DATASETS = [d["name"] for d in config["datasets"]]
BACKBONES = [b["name"] for b in config["backbones"]]
METHODS = config["methods"]
SYNTHETIC = [ds for ds in DATASETS if ds.startswith("synth_")]
REAL = [ds for ds in DATASETS if not ds.startswith("synth_")]
PRESET = config["preset"]


def _alternatives(values):
    return "|".join(values) if values else "(?!x)x"


wildcard_constraints:
    ds=_alternatives(DATASETS),
    synth=_alternatives(SYNTHETIC),
    real=_alternatives(REAL),
    backbone=_alternatives(BACKBONES),
    method=_alternatives(METHODS),
    split="train|val|test",
    variant="|".join(["baseline", "fcam", *(v["name"] for v in config["ablation"]["variants"])]),


def uses_gpu():
    """1 where jobs will run on a GPU (a `gpu` resource for local and cluster scheduling)."""
    device = config["device"]
    if device == "cpu":
        return 0
    return 1 if device.startswith("cuda") or shutil.which("nvidia-smi") else 0


GPU = uses_gpu()


def code_of(*parts):
    """The fcam source files a job runs, as inputs: editing them reruns the job."""
    files = []
    for part in parts:
        path = Path(workflow.basedir) / "fcam" / part
        found = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
        files += [os.path.relpath(f) for f in found]
    return files


def decoder_epochs(wildcards):
    return next(d["decoder_epochs"] for d in config["datasets"] if d["name"] == wildcards.ds)


def classifier_lr(wildcards):
    return next(b["classifier_lr"] for b in config["backbones"] if b["name"] == wildcards.backbone)


def metadata(ds):
    return f"{DATA}/metadata/{ds}"


def loss_flags(loss):
    """The decoder's loss terms as CLI flags (weight 0 turns a term off)."""
    flags = []
    for name in ("pce", "crf", "size"):
        term = loss[name]
        end = "none" if term["end_epoch"] is None else term["end_epoch"]
        flags.append(f"--{name}-weight {term['weight']} --{name}-start {term['start_epoch']} --{name}-end {end}")
    crf = loss["crf"]
    flags.append(f"--crf-sigma-rgb {crf['sigma_rgb']} --crf-sigma-xy {crf['sigma_xy']} --crf-scale {crf['scale']}")
    return " ".join(flags)


def evaluation_metrics(datasets=DATASETS):
    return expand(
        "results/evaluate/{ds}/{backbone}/{method}/{variant}/metrics.json",
        ds=datasets,
        backbone=BACKBONES,
        method=METHODS,
        variant=["baseline", "fcam"],
    )


FIGURE_KINDS = ["samples", "accuracy_vs_tau", "histograms"]


def figure_files(ext="pdf"):
    """Every figure of the enabled (dataset, backbone, method) combinations."""
    return expand(
        "reports/figures/{ds}_{backbone}_{method}_{kind}.{ext}",
        ds=DATASETS,
        backbone=BACKBONES,
        method=METHODS,
        kind=FIGURE_KINDS,
        ext=ext,
    )


ABLATION = config["ablation"]


def ablation_terms(wildcards):
    return next(v["terms"] for v in ABLATION["variants"] if v["name"] == wildcards.variant)


def ablation_metrics():
    return expand(
        "results/ablation/evaluate/{ds}/{backbone}/{method}/{variant}/metrics.json",
        ds=DATASETS,
        backbone=ABLATION["backbone"],
        method=ABLATION["method"],
        variant=[v["name"] for v in ABLATION["variants"]],
    )
