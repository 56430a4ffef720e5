"""The pipeline's one stage table: every stage defined once, for Snakemake, DVC and the CLI.

A :class:`Stage` says what a job of that stage is: its wildcards and their values, its inputs and
outputs (path templates), the parameter keys it reads, the fcam code its result depends on, its
resources and its ``fcam`` command. From this table:

- ``workflow/rules/stages.smk`` declares one Snakemake rule per stage (``Pipeline.snakemake_*``);
- ``fcam dvc-yaml`` writes ``dvc.yaml``, one ``foreach`` stage per stage (:mod:`fcam.pipeline.dvc`);
- the ``fcam`` subcommand of a stage rebuilds the same job from its wildcards
  (:meth:`Pipeline.spec`): the same paths, and the same resolved parameters that Snakemake's params
  trigger sees and DVC records.

Wildcards: ``ds`` (dataset), ``backbone``, ``method`` (CAM method), ``seed`` (training seed),
``setting`` (a point of the decoder's validation search, e.g. ``nbg0.1-alpha1``), ``variant`` (an
ablation's loss-term subset). A job's name is ``<stage>@<its wildcard values joined by ->``, with
the seed as ``seed<n>``, e.g. ``decoder@synth_boxes-resnet50-cam-seed0-nbg0.1-alpha1``: DVC's stage
name, MLflow's ``job`` tag and the log file's stem.

Twin CAM methods (:mod:`fcam.cam_twins`: e.g. CAM, Grad-CAM and XGrad-CAM give the same maps on
fcam's GAP + linear classifiers) are computed once: the ``cams``, ``decoder`` and ``select`` stages
(and per-method classifiers) run over the *computed* methods only, and the input templates of the
stages that every method keeps (the evaluations, the ablation) name the computed method as
``{computed}``, a value derived from ``{method}`` (:meth:`Pipeline.inputs`).

Which stages exist depends on the parameters: ``synth`` for synthetic datasets, ``download`` and
``prepare`` for real ones, a shared or a per-method ``classifier`` (``classifier.per_method``),
``select`` only when the search grid has more than one point, the ablation only when it has variants.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from fcam.constants import CAM_METHODS
from fcam.errors import ConfigError
from fcam.pipeline.params import Params, Setting

__all__ = [
    "FIGURE_KINDS",
    "STAGES",
    "WILDCARDS",
    "JobSpec",
    "Output",
    "Pipeline",
    "Stage",
]

#: Every wildcard, in the order job names list them.
WILDCARDS: Final = ("ds", "backbone", "method", "seed", "setting", "variant")

FIGURE_KINDS: Final = ("samples", "accuracy_vs_tau", "histograms")

Paths = dict[str, "str | list[str]"]
Wildcards = Mapping[str, str]


@dataclass(frozen=True)
class Output:
    """One output path template; ``directory``: the job writes a folder (a dataset)."""

    path: str
    directory: bool = False
    report: str | None = (
        None  # category in Snakemake's HTML report (captioned by workflow/report/<stage>.rst)
    )


@dataclass(frozen=True)
class Stage:
    """One stage of the DAG.

    Attributes:
        name: Snakemake rule and DVC stage name.
        command: the ``fcam`` subcommand words, e.g. ``("train-decoder",)``.
        wildcards: the job's wildcards, in name order.
        runner: ``module:function`` called with the job's :class:`JobSpec` and MLflow run.
        doc: one line for the README's stage table and ``--help``.
        domain: the wildcard values of every job, given the parameters.
        outputs: name -> :class:`Output` (or a list of them), templates over the wildcards.
        inputs: name -> path (or list), given the parameters and one job's wildcards.
        reads: the parameter keys the job reads, as ``(key template, name in the job's config)``;
            ``classifier`` and ``decoder`` include the dataset's and backbone's overrides.
        code: repository paths (files or folders) whose code decides the outputs.
        enabled: whether the stage exists for these parameters.
        threads: the job uses the ``threads`` parameter (else one thread).
        gpu: the job runs a network (takes one unit of the ``gpu`` resource).
        local: runs where Snakemake runs (downloads: compute nodes may have no internet).
        dvc: DVC runs it too (False: Snakemake only, e.g. compiling LaTeX, which DVC cannot skip).
    """

    name: str
    command: tuple[str, ...]
    wildcards: tuple[str, ...]
    runner: str
    doc: str
    domain: Callable[[Params], list[dict[str, str]]]
    outputs: Callable[[Params], dict[str, Output | list[Output]]]
    inputs: Callable[[Pipeline, Wildcards], Paths] = lambda p, w: {}
    reads: tuple[tuple[str, str], ...] = ()
    code: tuple[str, ...] = ()
    enabled: Callable[[Params], bool] = lambda p: True
    threads: bool = False
    gpu: bool = False
    local: bool = False
    dvc: bool = True


@dataclass(frozen=True)
class JobSpec:
    """Everything one job needs, rebuilt from its stage and wildcards.

    Attributes:
        stage: the stage name.
        name: the job's name (``decoder@synth_boxes-resnet50-cam-seed0-nbg0.1-alpha1``).
        wildcards: the wildcard values (strings, as in paths).
        config: the resolved parameters the job reads (Snakemake's params trigger value; what
            DVC records for its listed keys).
        inputs, outputs: name -> path or tuple of paths.
        log: the job's log file.
        code: the fcam source files its result depends on.
        preset: the parameter file's ``preset`` name (tags, titles).
        params_file: the parameter file the job was built from.
        device: the ``device`` parameter; threads: torch threads for the job; workers:
            data-loading processes of a network job.
    """

    stage: str
    name: str
    wildcards: Mapping[str, str]
    config: Mapping[str, Any]
    inputs: Mapping[str, Path | tuple[Path, ...]]
    outputs: Mapping[str, Path | tuple[Path, ...]]
    log: Path
    code: tuple[Path, ...]
    preset: str
    params_file: str
    device: str
    threads: int
    workers: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        """The training seed of the job (0 for jobs that have none)."""
        return int(self.wildcards.get("seed", 0))

    def path(self, name: str) -> Path:
        """The single input or output called ``name``."""
        value = self.inputs[name] if name in self.inputs else self.outputs[name]
        if not isinstance(value, Path):
            raise KeyError(f"{self.name}: {name!r} is a list of paths")
        return value

    def paths(self, name: str) -> tuple[Path, ...]:
        """The input or output list called ``name``."""
        value = self.inputs[name] if name in self.inputs else self.outputs[name]
        return value if isinstance(value, tuple) else (value,)


# --------------------------------------------------------------------------------------------
# Path conventions (``{data}`` is the data_root parameter, substituted by Pipeline).

_CLASSIFIER = "results/classifier/{ds}/{backbone}/{method}/seed{seed}"
_CAMS = "results/cams/{ds}/{backbone}/{method}/seed{seed}"
_DECODER = "results/decoder/{ds}/{backbone}/{method}/seed{seed}/{setting}"
_SELECT = "results/select/{ds}/{backbone}/{method}/seed{seed}"
_EVALUATE = "results/evaluate/{ds}/{backbone}/{method}/seed{seed}/{variant}"
_ABLATION_DECODER = "results/ablation/decoder/{ds}/{backbone}/{method}/seed{seed}/{variant}"
_ABLATION_EVALUATE = "results/ablation/evaluate/{ds}/{backbone}/{method}/seed{seed}/{variant}"
_EVAL_FILES = ("metrics.json", "curves.json", "samples.npz")
_FIGURE = "reports/figures/{ds}_{backbone}_{method}_{kind}.{ext}"


def _fill(template: str, **values: Any) -> str:
    """Substitute some fields of a template, leaving the others (``{ds}``) in place."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), template)


def _grid(params: Params, names: Sequence[str], **fixed: list[str]) -> list[dict[str, str]]:
    """Every combination of the enabled values of ``names`` (``fixed`` narrows some)."""
    values = {
        "ds": params.datasets,
        "backbone": params.backbones,
        "method": params.methods,
        "seed": [str(s) for s in params.seeds],
        "setting": [s.name for s in params.settings],
        "variant": list(params.ablation_variants),
        **fixed,
    }
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(values[n] for n in names))]


def _data(ds: str = "{ds}") -> Paths:
    return {"root": f"{{data}}/{ds}", "meta": f"{{data}}/metadata/{ds}"}


def _classifier_best(method: str = "{method}") -> str:
    return f"{_fill(_CLASSIFIER, method=method)}/best.pt"


def _computed(template: str) -> str:
    """A template of a computed method's file, for a job of any method (``{computed}``)."""
    return _fill(template, method="{computed}")


def _computed_grid(params: Params, names: Sequence[str]) -> list[dict[str, str]]:
    """The jobs of a stage that runs once per group of twin methods."""
    return _grid(params, names, method=params.computed_methods)


def _chosen_decoder(p: Pipeline, w: Wildcards) -> Paths:
    """The decoder the search chose: the select job's links, or the grid's only point."""
    if p.has("select"):
        base = _computed(_SELECT).format(**w)
    else:
        base = _computed(_fill(_DECODER, setting=p.params.settings[0].name)).format(**w)
    return {"best": f"{base}/best.pt", "last": f"{base}/last.pt"}


def _evaluation(variant: str, folder: str = _EVALUATE) -> dict[str, Output]:
    base = _fill(folder, variant=variant)
    return {name.split(".")[0]: Output(f"{base}/{name}") for name in _EVAL_FILES}


def _every_evaluation(p: Pipeline, files: Sequence[str] = ("metrics.json",)) -> list[str]:
    return [
        f"{_EVALUATE.format(**w, variant=v)}/{f}"
        for w in _grid(p.params, ("ds", "backbone", "method", "seed"))
        for v in ("baseline", "fcam")
        for f in files
    ]


def _figures(ext: str | None = None) -> Callable[[Pipeline, Wildcards], list[str]]:
    def files(p: Pipeline, w: Wildcards) -> list[str]:
        exts = [ext] if ext else ["pdf", "png"]
        return [
            _FIGURE.format(**g, kind=kind, ext=e)
            for g in _grid(p.params, ("ds", "backbone", "method"))
            for kind in FIGURE_KINDS
            for e in exts
        ]

    return files


def _ablation_grid(p: Params) -> dict[str, list[str]]:
    ab = p["ablation"]
    return {"backbone": [ab["backbone"]], "method": [ab["method"]]}


_EVAL_READS = (
    ("evaluate.step", "step"),
    ("evaluate.samples", "samples"),
    ("evaluate.batch_size", "batch_size"),
)
#: The code a job's result depends on (editing it reruns the job); the orchestration itself
#: (fcam/pipeline, fcam/cli, fcam/tracking.py) is not listed: its effect on a job shows in the
#: job's paths and resolved parameters, which both schedulers compare.
_DATA_CODE = ("fcam/data/datasets.py", "fcam/data/metadata.py", "fcam/data/images.py", "fcam/io.py")
_CHECK_CODE = ("fcam/data/verify.py", "fcam/data/metadata.py", "fcam/data/images.py", "fcam/data/sources.py")
_SCORE_CODE = ("fcam/evaluate/scoring.py", "fcam/metrics")
_TRAIN_CODE = ("fcam/train/loop.py", "fcam/models", *_DATA_CODE, *_SCORE_CODE)
_REPORT_READS = (("preset", "preset"), ("grid", "grid"))

STAGES: Final[tuple[Stage, ...]] = (
    Stage(
        name="synth",
        command=("data", "synth"),
        wildcards=("ds",),
        runner="fcam.data.jobs:run_synth",
        doc="generate a synthetic dataset (images, masks, wsolevaluation metadata)",
        domain=lambda p: [{"ds": ds} for ds in p.synthetic],
        enabled=lambda p: bool(p.synthetic),
        outputs=lambda p: {
            "root": Output("{data}/{ds}", directory=True),
            "meta": Output("{data}/metadata/{ds}", directory=True),
        },
        reads=(("synth.{ds}", "synth"),),
        code=("fcam/data/synthetic.py", *_CHECK_CODE),
    ),
    Stage(
        name="download",
        command=("data", "download"),
        wildcards=("ds",),
        runner="fcam.data.jobs:run_download",
        doc="download a real dataset's archives, checksum-verified and resumable",
        domain=lambda p: [{"ds": ds} for ds in p.real],
        enabled=lambda p: bool(p.real),
        outputs=lambda p: {"archives": Output("{data}/downloads/{ds}", directory=True)},
        reads=(("download.{ds}", "download"),),
        code=("fcam/data/download.py", "fcam/data/sources.py"),
        local=True,
    ),
    Stage(
        name="prepare",
        command=("data", "prepare"),
        wildcards=("ds",),
        runner="fcam.data.jobs:run_prepare",
        doc="extract a real dataset and write its train/val/test metadata",
        domain=lambda p: [{"ds": ds} for ds in p.real],
        enabled=lambda p: bool(p.real),
        inputs=lambda p, w: {"archives": "{data}/downloads/{ds}"},
        outputs=lambda p: {
            "root": Output("{data}/{ds}", directory=True),
            "meta": Output("{data}/metadata/{ds}", directory=True),
        },
        code=("fcam/data/prepare.py", "fcam/data/extract.py", *_CHECK_CODE),
    ),
    Stage(
        name="classifier",
        command=("train-classifier",),
        wildcards=("ds", "backbone", "seed"),
        runner="fcam.train.classifier:run",
        doc="phase 1: train a classifier; its best epoch is kept for each of the six CAM methods",
        domain=lambda p: _grid(p, ("ds", "backbone", "seed")),
        enabled=lambda p: not p["classifier"]["per_method"],
        inputs=lambda p, w: _data(),
        outputs=lambda p: {
            "best": [Output(_classifier_best(m)) for m in CAM_METHODS],
            "history": Output(f"{_fill(_CLASSIFIER, method='shared')}/history.json"),
        },
        reads=(
            ("classifier", "classifier"),
            ("images", "images"),
            ("cams.reference", "cam_reference"),
            ("evaluate.val_step", "val_step"),
        ),
        code=("fcam/train/classifier.py", *_TRAIN_CODE, "fcam/cams"),
        threads=True,
        gpu=True,
    ),
    Stage(
        name="classifier",
        command=("train-classifier",),
        wildcards=("ds", "backbone", "method", "seed"),
        runner="fcam.train.classifier:run",
        doc="phase 1: train one classifier per CAM method (the paper's protocol)",
        domain=lambda p: _computed_grid(p, ("ds", "backbone", "method", "seed")),
        enabled=lambda p: p["classifier"]["per_method"],
        inputs=lambda p, w: _data(),
        outputs=lambda p: {
            "best": Output(_classifier_best()),
            "history": Output(f"{_CLASSIFIER}/history.json"),
        },
        reads=(
            ("classifier", "classifier"),
            ("images", "images"),
            ("cams.reference", "cam_reference"),
            ("evaluate.val_step", "val_step"),
        ),
        code=("fcam/train/classifier.py", *_TRAIN_CODE, "fcam/cams"),
        threads=True,
        gpu=True,
    ),
    Stage(
        name="cams",
        command=("cache-cams",),
        wildcards=("ds", "backbone", "method", "seed"),
        runner="fcam.cams.cache:run",
        doc="cache the low-resolution CAMs of the frozen classifier (train and test splits)",
        domain=lambda p: _computed_grid(p, ("ds", "backbone", "method", "seed")),
        inputs=lambda p, w: {**_data(), "classifier": _classifier_best()},
        outputs=lambda p: {"train": Output(f"{_CAMS}/train.pt"), "test": Output(f"{_CAMS}/test.pt")},
        reads=(("images", "images"), ("cams", "cams")),
        code=("fcam/cams", "fcam/models", *_DATA_CODE),
        threads=True,
        gpu=True,
    ),
    Stage(
        name="decoder",
        command=("train-decoder",),
        wildcards=("ds", "backbone", "method", "seed", "setting"),
        runner="fcam.train.decoder:run",
        doc="phase 2: train the F-CAM decoder on the frozen classifier, one per search setting",
        domain=lambda p: _computed_grid(p, ("ds", "backbone", "method", "seed", "setting")),
        inputs=lambda p, w: {**_data(), "classifier": _classifier_best(), "cams": f"{_CAMS}/train.pt"},
        outputs=lambda p: {
            "best": Output(f"{_DECODER}/best.pt"),
            "last": Output(f"{_DECODER}/last.pt"),
            "history": Output(f"{_DECODER}/history.json"),
        },
        reads=(
            ("decoder", "decoder"),
            ("images", "images"),
            ("evaluate.val_step", "val_step"),
            ("setting", "setting"),
        ),
        code=("fcam/train/decoder.py", *_TRAIN_CODE, "fcam/losses", "fcam/cams/cache.py"),
        threads=True,
        gpu=True,
    ),
    Stage(
        name="select",
        command=("select-decoder",),
        wildcards=("ds", "backbone", "method", "seed"),
        runner="fcam.train.select:run",
        doc="keep the search setting whose decoder localises best on the validation split",
        domain=lambda p: _computed_grid(p, ("ds", "backbone", "method", "seed")),
        enabled=lambda p: len(p.settings) > 1,
        inputs=lambda p, w: {
            f"{name}_files": [
                f"{_fill(_DECODER, setting=s.name).format(**w)}/{name}.{ext}" for s in p.params.settings
            ]
            for name, ext in (("history", "json"), ("best", "pt"), ("last", "pt"))
        },
        outputs=lambda p: {
            "best": Output(f"{_SELECT}/best.pt"),
            "last": Output(f"{_SELECT}/last.pt"),
            "choice": Output(f"{_SELECT}/choice.json"),
        },
        code=("fcam/train/select.py",),
    ),
    Stage(
        name="evaluate_baseline",
        command=("evaluate", "baseline"),
        wildcards=("ds", "backbone", "method", "seed"),
        runner="fcam.evaluate.testing:run_baseline",
        doc="threshold-sweep evaluation of the interpolated CAMs on the test split",
        domain=lambda p: _grid(p, ("ds", "backbone", "method", "seed")),
        inputs=lambda p, w: {**_data(), "cams": f"{_computed(_CAMS)}/test.pt"},
        outputs=lambda p: _evaluation("baseline"),
        reads=_EVAL_READS,
        code=("fcam/evaluate", "fcam/metrics", *_DATA_CODE, "fcam/cams/cache.py"),
    ),
    Stage(
        name="evaluate_fcam",
        command=("evaluate", "fcam"),
        wildcards=("ds", "backbone", "method", "seed"),
        runner="fcam.evaluate.testing:run_fcam",
        doc="threshold-sweep evaluation of F-CAM (best and last decoder) on the test split",
        domain=lambda p: _grid(p, ("ds", "backbone", "method", "seed")),
        inputs=lambda p, w: {
            **_data(),
            "classifier": _classifier_best("{computed}"),
            **_chosen_decoder(p, w),
        },
        outputs=lambda p: _evaluation("fcam"),
        reads=(*_EVAL_READS, ("images.crop_size", "size")),
        code=("fcam/evaluate", "fcam/metrics", *_DATA_CODE, "fcam/models"),
        threads=True,
        gpu=True,
    ),
    Stage(
        name="ablation_decoder",
        command=("ablation", "train"),
        wildcards=("ds", "backbone", "method", "seed", "variant"),
        runner="fcam.train.decoder:run_ablation",
        doc="the loss ablation: the decoder retrained with a subset of its loss terms",
        domain=lambda p: _grid(p, ("ds", "backbone", "method", "seed", "variant"), **_ablation_grid(p)),
        enabled=lambda p: bool(p.ablation_variants),
        inputs=lambda p, w: {
            **_data(),
            "classifier": _classifier_best("{computed}"),
            "cams": f"{_computed(_CAMS)}/train.pt",
            **({"choice": f"{_computed(_SELECT).format(**w)}/choice.json"} if p.has("select") else {}),
        },
        outputs=lambda p: {
            "best": Output(f"{_ABLATION_DECODER}/best.pt"),
            "last": Output(f"{_ABLATION_DECODER}/last.pt"),
            "history": Output(f"{_ABLATION_DECODER}/history.json"),
        },
        reads=(
            ("decoder", "decoder"),
            ("images", "images"),
            ("evaluate.val_step", "val_step"),
            ("search", "search"),
            ("ablation.variants.{variant}", "terms"),
        ),
        code=("fcam/train/decoder.py", *_TRAIN_CODE, "fcam/losses", "fcam/cams/cache.py"),
        threads=True,
        gpu=True,
    ),
    Stage(
        name="ablation_evaluate",
        command=("ablation", "evaluate"),
        wildcards=("ds", "backbone", "method", "seed", "variant"),
        runner="fcam.evaluate.testing:run_ablation",
        doc="threshold-sweep evaluation of an ablation decoder on the test split",
        domain=lambda p: _grid(p, ("ds", "backbone", "method", "seed", "variant"), **_ablation_grid(p)),
        enabled=lambda p: bool(p.ablation_variants),
        inputs=lambda p, w: {
            **_data(),
            "classifier": _classifier_best("{computed}"),
            "best": f"{_ABLATION_DECODER}/best.pt",
            "last": f"{_ABLATION_DECODER}/last.pt",
        },
        outputs=lambda p: {
            name.split(".")[0]: Output(f"{_ABLATION_EVALUATE}/{name}") for name in _EVAL_FILES
        },
        reads=(*_EVAL_READS, ("images.crop_size", "size")),
        code=("fcam/evaluate", "fcam/metrics", *_DATA_CODE, "fcam/models"),
        threads=True,
        gpu=True,
    ),
    Stage(
        name="table1",
        command=("report", "table1"),
        wildcards=(),
        runner="fcam.report.jobs:run_table1",
        doc="Table 1: MaxBoxAcc (box datasets) and PxAP (mask datasets), mean ± std over seeds",
        domain=lambda p: [{}],
        inputs=lambda p, w: {"metrics": _every_evaluation(p)},
        outputs=lambda p: {
            "table": Output("reports/table1.tex"),
            "html": Output("reports/table1.html", report="Tables"),
        },
        reads=_REPORT_READS,
        code=("fcam/report",),
    ),
    Stage(
        name="table2",
        command=("report", "table2"),
        wildcards=(),
        runner="fcam.report.jobs:run_table2",
        doc="Table 2: Top-1 / Top-5 localisation on the box datasets",
        domain=lambda p: [{}],
        inputs=lambda p, w: {"metrics": _every_evaluation(p)},
        outputs=lambda p: {
            "table": Output("reports/table2.tex"),
            "html": Output("reports/table2.html", report="Tables"),
        },
        reads=_REPORT_READS,
        code=("fcam/report",),
    ),
    Stage(
        name="comparison",
        command=("report", "comparison"),
        wildcards=(),
        runner="fcam.report.jobs:run_comparison",
        doc="our numbers beside the paper's, F-CAM's gain per cell with its seed noise",
        domain=lambda p: [{}],
        inputs=lambda p, w: {
            "metrics": _every_evaluation(p),
            "curves": _every_evaluation(p, ("curves.json",)),
        },
        outputs=lambda p: {
            "report": Output("reports/comparison.md"),
            "html": Output("reports/comparison.html", report="Comparison with the paper"),
        },
        reads=_REPORT_READS,
        code=("fcam/report", "fcam/data/sources.py"),  # the protocol's split sizes
    ),
    Stage(
        name="figures",
        command=("report", "figures"),
        wildcards=("ds", "backbone", "method"),
        runner="fcam.report.jobs:run_figures",
        doc="sample maps, accuracy vs threshold, histograms of one (dataset, backbone, method)",
        domain=lambda p: _grid(p, ("ds", "backbone", "method")),
        inputs=lambda p, w: {
            f"{variant}_{kind}": f"{_EVALUATE.format(**w, seed=p.params.seeds[0], variant=variant)}/{kind}"
            for variant in ("baseline", "fcam")
            for kind in ("samples.npz", "curves.json")
        },
        outputs=lambda p: {
            "figures": [
                Output(
                    _FIGURE.replace("{kind}", kind).replace("{ext}", ext),
                    report="Figures" if ext == "png" else None,
                )
                for kind in FIGURE_KINDS
                for ext in ("pdf", "png")
            ]
        },
        reads=(("evaluate.samples", "samples"), ("seeds", "seeds")),
        code=("fcam/report",),
    ),
    Stage(
        name="paper",
        command=("report", "paper"),
        wildcards=(),
        runner="fcam.report.jobs:run_paper",
        doc="the LaTeX document gathering the tables and figures",
        domain=lambda p: [{}],
        inputs=lambda p, w: {
            "tables": ["reports/table1.tex", "reports/table2.tex"],
            "figures": _figures("pdf")(p, w),
        },
        outputs=lambda p: {"tex": Output("reports/paper.tex")},
        reads=_REPORT_READS,
        code=("fcam/report",),
    ),
    Stage(
        name="paper_pdf",
        command=("report", "pdf"),
        wildcards=(),
        runner="fcam.report.jobs:run_pdf",
        doc="compile reports/paper.tex (needs pdflatex; Snakemake only)",
        domain=lambda p: [{}],
        inputs=lambda p, w: {
            "tex": "reports/paper.tex",
            "tables": ["reports/table1.tex", "reports/table2.tex"],
            "figures": _figures("pdf")(p, w),
        },
        outputs=lambda p: {"pdf": Output("reports/paper.pdf")},
        code=("fcam/report",),
        dvc=False,
    ),
    Stage(
        name="ablation_table",
        command=("report", "ablation"),
        wildcards=(),
        runner="fcam.report.jobs:run_ablation",
        doc="the loss ablation table (each variant beside the full F-CAM loss)",
        domain=lambda p: [{}],
        enabled=lambda p: bool(p.ablation_variants),
        inputs=lambda p, w: {
            "metrics": [
                f"{_ABLATION_EVALUATE.format(**g)}/metrics.json"
                for g in _grid(
                    p.params, ("ds", "backbone", "method", "seed", "variant"), **_ablation_grid(p.params)
                )
            ],
            "full": [
                f"{_EVALUATE.format(**g, variant='fcam')}/metrics.json"
                for g in _grid(p.params, ("ds", "backbone", "method", "seed"), **_ablation_grid(p.params))
            ],
        },
        outputs=lambda p: {
            "table": Output("reports/ablation.tex"),
            "html": Output("reports/ablation.html", report="Loss ablation"),
        },
        reads=(*_REPORT_READS, ("ablation", "ablation")),
        code=("fcam/report",),
    ),
)

#: The files the default target builds.
TARGETS: Final = ("table1", "table2", "comparison", "paper", "ablation_table")


def _flat(value: str | list[str] | Output | list[Output]) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [v.path if isinstance(v, Output) else v for v in items]


class Pipeline:
    """The stages enabled by a parameter file, and every job's paths, parameters and commands."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.stages: dict[str, Stage] = {}
        for stage in STAGES:
            if stage.enabled(params):
                assert stage.name not in self.stages, f"two enabled definitions of stage {stage.name}"
                self.stages[stage.name] = stage
        self._data_root = params["data_root"]

    # -- structure ------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        """Whether stage ``name`` exists for these parameters."""
        return name in self.stages

    def stage(self, name: str) -> Stage:
        """The enabled stage ``name``.

        Raises:
            ConfigError: the stage does not exist for these parameters (e.g. ``select`` without a grid).
        """
        if name not in self.stages:
            raise ConfigError(f"{self.params.source}: stage {name!r} is not part of this configuration")
        return self.stages[name]

    def jobs(self, name: str) -> list[dict[str, str]]:
        """The wildcard values of every job of stage ``name``."""
        return self.stage(name).domain(self.params)

    def job_name(self, name: str, wildcards: Wildcards) -> str:
        """``<stage>@<values>`` (the DVC stage name), or the stage name for a stage without wildcards."""
        stage = self.stage(name)
        if not stage.wildcards:
            return stage.name
        values = [f"seed{wildcards[w]}" if w == "seed" else str(wildcards[w]) for w in stage.wildcards]
        return f"{stage.name}@{'-'.join(values)}"

    def check_wildcards(self, name: str, wildcards: Wildcards) -> dict[str, str]:
        """Check that ``wildcards`` name one job of stage ``name``; returns them as strings.

        Raises:
            ConfigError: a missing or extra wildcard, or a value the parameters do not enable.
        """
        stage = self.stage(name)
        given = {k: str(v) for k, v in wildcards.items() if v is not None}
        missing = [w for w in stage.wildcards if w not in given]
        extra = [w for w in given if w not in stage.wildcards]
        if missing or extra:
            need = " ".join(f"--{w}" for w in stage.wildcards) or "no job flags"
            raise ConfigError(f"stage {name} takes {need} (missing: {missing}, not taken: {extra})")
        if given not in self.jobs(name):
            for w in stage.wildcards:
                values = sorted({job[w] for job in self.jobs(name)})
                if w == "method" and given[w] in self.params.methods and given[w] not in values:
                    computed = self.params.computed_as(given[w])
                    raise ConfigError(
                        f"{self.params.source}: stage {name} runs once per group of twin CAM methods, "
                        f"and {given[w]!r} is computed as {computed!r} (fcam.cam_twins): "
                        f"use --method {computed}"
                    )
                if given[w] not in values:
                    raise ConfigError(
                        f"{self.params.source}: {w} {given[w]!r} is not enabled for stage {name} "
                        f"(enabled: {', '.join(values)})"
                    )
            raise ConfigError(f"{self.params.source}: {given} is not a job of stage {name}")
        return given

    # -- paths ----------------------------------------------------------------------------

    def _data(self, path: str) -> str:
        return path.replace("{data}", self._data_root)

    def outputs(self, name: str) -> dict[str, Output | list[Output]]:
        """Output templates of stage ``name`` (``{data}`` resolved, wildcards left in place)."""

        def resolve(o: Output) -> Output:
            return Output(self._data(o.path), o.directory, o.report)

        return {
            key: [resolve(o) for o in value] if isinstance(value, list) else resolve(value)
            for key, value in self.stage(name).outputs(self.params).items()
        }

    def inputs(self, name: str, wildcards: Wildcards) -> dict[str, str | list[str]]:
        """Input paths of one job (``wildcards`` may also be placeholders such as ``${item.ds}``)."""
        wildcards = self.derived(wildcards)
        out: dict[str, str | list[str]] = {}
        for key, value in self.stage(name).inputs(self, wildcards).items():
            if isinstance(value, list):
                out[key] = [self._data(_fill(v, **wildcards)) for v in value]
            else:
                out[key] = self._data(_fill(value, **wildcards))
        return out

    def derived(self, wildcards: Wildcards) -> dict[str, str]:
        """``wildcards`` with the values derived from them: ``computed``, the computed method that
        serves ``method`` (:mod:`fcam.cam_twins`). Placeholders that already carry it (DVC's
        ``${item.computed}``) are kept."""
        out = dict(wildcards)
        if "method" in out and "computed" not in out:
            out["computed"] = self.params.computed_as(out["method"])
        return out

    def log(self, name: str) -> str:
        """The log template of stage ``name``: ``logs/<stage>/<wildcard values>.log``."""
        stage = self.stage(name)
        parts = ["seed{seed}" if w == "seed" else f"{{{w}}}" for w in stage.wildcards]
        return "/".join(["logs", stage.name, *parts]) + ".log" if parts else f"logs/report/{stage.name}.log"

    def code_files(self, name: str, root: Path = Path()) -> list[str]:
        """The Python files of the stage's code paths, relative to ``root`` (sorted)."""
        files: list[str] = []
        for entry in self.stage(name).code:
            path = root / entry
            if path.is_dir():
                files += [os.path.relpath(f, root) for f in sorted(path.rglob("*.py"))]
            else:
                files.append(entry)
        return files

    # -- parameters -----------------------------------------------------------------------

    def job_config(self, name: str, wildcards: Wildcards) -> dict[str, Any]:
        """The resolved parameters one job reads, under the names the job knows them by."""
        stage = self.stage(name)
        config: dict[str, Any] = {}
        for key, into in stage.reads:
            config[into] = self._read(key, wildcards)
        return config

    def _read(self, key: str, w: Wildcards) -> Any:
        if key == "setting":
            setting: Setting = self.params.setting(w["setting"])
            return setting.as_dict()
        if key == "grid":  # what the reports lay out: the enabled names, in the file's order
            p = self.params
            return {"datasets": p.datasets, "backbones": p.backbones, "methods": p.methods, "seeds": p.seeds}
        head, _, rest = key.partition(".")
        if head in ("classifier", "decoder"):
            value: Any = self.params.section(head, ds=w.get("ds"), backbone=w.get("backbone"))
        else:
            value = self.params[head]
        for part in filter(None, rest.split(".")):
            value = value[part.format(**w)]
        return value

    def dvc_params(self, name: str, item: Mapping[str, str]) -> list[str]:
        """The parameter keys DVC tracks for the stage (templates over ``item`` placeholders)."""
        keys: list[str] = []
        for key, _ in self.stage(name).reads:
            if key in ("setting", "grid"):
                continue  # in the command (--setting nbg0.1-alpha1), or in the inputs' list (grid)
            head = key.partition(".")[0]
            keys.append(key.format(**item))
            if head in ("classifier", "decoder"):
                keys += [f"datasets.{item['ds']}.{head}", f"backbones.{item['backbone']}.{head}"]
        return keys

    # -- commands and specs ---------------------------------------------------------------

    def command(
        self,
        name: str,
        wildcards: Wildcards,
        *,
        log: str,
        params_file: str,
        overrides: Sequence[str] = (),
        threads: str | None = None,
    ) -> str:
        """The shell command of a job (``wildcards`` and ``log`` may be placeholders).

        Args:
            overrides: ``KEY=VALUE`` strings passed as ``--set`` (Snakemake's ``--config``).
            threads: the ``--threads`` value (Snakemake's ``{threads}``); None: the parameter's.
        """
        import shlex

        stage = self.stage(name)
        words = ["fcam", "--log", log, *stage.command, "--params", params_file]
        for o in overrides:
            words += ["--set", shlex.quote(o)]
        for w in stage.wildcards:
            words += [f"--{w}", wildcards[w]]
        if threads is not None:
            words += ["--threads", threads]
        return " ".join(words)

    def spec(
        self, name: str, wildcards: Wildcards, *, params_file: str, threads: int | None = None
    ) -> JobSpec:
        """The job of stage ``name`` with these wildcards, as its ``fcam`` subcommand runs it.

        Raises:
            ConfigError: the wildcards do not name a job of this configuration.
        """
        wc = self.check_wildcards(name, wildcards)
        stage = self.stage(name)

        def concrete(value: Any) -> Path | tuple[Path, ...]:
            if isinstance(value, list):
                return tuple(Path(_fill(v.path if isinstance(v, Output) else v, **wc)) for v in value)
            return Path(_fill(value.path if isinstance(value, Output) else value, **wc))

        inputs = {k: concrete(v) for k, v in self.inputs(name, wc).items()}
        outputs = {k: concrete(v) for k, v in self.outputs(name).items()}
        tags = {k: v for k, v in wc.items() if k != "setting"}
        if "setting" in wc:
            tags["setting"] = wc["setting"]
        derived = self.derived(wc)
        if "computed" in derived:  # the method whose CAMs (and decoder) the job uses: fcam.cam_twins
            tags["computed_as"] = derived["computed"]
        return JobSpec(
            stage=name,
            name=self.job_name(name, wc),
            wildcards=wc,
            config=self.job_config(name, wc),
            inputs=inputs,
            outputs=outputs,
            log=Path(_fill(self.log(name), **wc)),
            code=tuple(Path(f) for f in self.code_files(name)),
            preset=self.params["preset"],
            params_file=params_file,
            device=self.params["device"],
            threads=threads if threads is not None else (self.params["threads"] if stage.threads else 1),
            workers=self.params["workers"] if stage.gpu else 0,
            tags=tags,
        )

    def targets(self) -> list[str]:
        """The files of the default target: the tables, the comparison, the document, the ablation."""
        files: list[str] = []
        for name in TARGETS:
            if self.has(name):
                files += [o for v in self.outputs(name).values() for o in _flat(v)]
        return files

    def producer(self, path: str) -> tuple[str, dict[str, str]] | None:
        """The stage and wildcards of the job that writes ``path``, or None."""
        for name in self.stages:
            for wc in self.jobs(name):
                for value in self.outputs(name).values():
                    if path in (_fill(p, **wc) for p in _flat(value)):
                        return name, wc
        return None
