"""Subcommands of the training and evaluation stages: one per DAG stage, one library call each."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from fcam.constants import BACKBONES, CAM_METHODS, DATASET_KINDS, SPLITS, VARIANTS
from fcam.runtime import set_threads

__all__ = ["register"]

T = TypeVar("T")


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "null", "") else int(text)


def _common(p: argparse.ArgumentParser, *, method: bool = True) -> None:
    p.add_argument("--ds", required=True, choices=sorted(DATASET_KINDS))
    p.add_argument("--backbone", required=True, choices=BACKBONES)
    if method:
        p.add_argument("--method", required=True, choices=CAM_METHODS)
    p.add_argument(
        "--dataset-root", type=Path, required=True, help="folder the metadata's image paths are relative to"
    )
    p.add_argument(
        "--metadata-root", type=Path, required=True, help="folder holding train/ val/ test/ metadata"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch threads (Snakemake's threads:)")
    p.add_argument("--preset", default="default", help="name of the params preset, for tracking tags")


def _sgd(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", type=_bool, default=True)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--resize-size", type=int, required=True)
    p.add_argument("--crop-size", type=int, required=True)
    p.add_argument("--val-step", type=float, default=0.004)


def _config(cls: type[T], a: argparse.Namespace, **overrides: Any) -> T:
    """Build a job's frozen config from the parsed flags (a flag and its field share a name).

    Also applies ``--threads`` first: every job sets torch's thread count from Snakemake's.
    """
    set_threads(a.threads)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in vars(a).items() if k in names}, **overrides})


def _train_classifier(a: argparse.Namespace) -> None:
    from fcam.train.classifier import ClassifierConfig, train_classifier

    train_classifier(_config(ClassifierConfig, a, methods=tuple(a.methods)))


def _cache_cams(a: argparse.Namespace) -> None:
    from fcam.cams.cache import CamCacheConfig, cache_cams

    cache_cams(_config(CamCacheConfig, a, splits=tuple(a.splits)))


def _train_decoder(a: argparse.Namespace) -> None:
    from fcam.losses import LossTerm
    from fcam.train.decoder import DecoderConfig, train_decoder

    terms = tuple(
        LossTerm(
            name,
            weight=getattr(a, f"{name}_weight"),
            start_epoch=getattr(a, f"{name}_start"),
            end_epoch=getattr(a, f"{name}_end"),
        )
        for name in ("pce", "crf", "size")
        if getattr(a, f"{name}_weight") > 0 and name in a.terms
    )
    train_decoder(_config(DecoderConfig, a, terms=terms))


def _evaluate(a: argparse.Namespace) -> None:
    from fcam.evaluate.job import EvaluateConfig, evaluate

    evaluate(_config(EvaluateConfig, a))


def _ui(a: argparse.Namespace) -> None:
    import os

    from fcam.tracking import ui_command

    cmd = ui_command(host=a.host, port=a.port, tracking_uri=a.tracking_uri)
    os.execv(cmd[0], cmd)  # the UI runs in the foreground until interrupted


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train-classifier``, ``cache-cams``, ``train-decoder`` and ``evaluate``."""
    p = sub.add_parser(
        "train-classifier", help="phase 1: train a classifier, select the best epoch per CAM method"
    )
    _common(p, method=False)
    _sgd(p)
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(CAM_METHODS),
        choices=CAM_METHODS,
        help="CAM methods to select the best epoch for (default: all)",
    )
    p.add_argument("--pretrained", choices=("none", "imagenet"), default="none")
    p.add_argument("--step-size", type=int, default=15, help="epochs between learning-rate decays")
    p.add_argument("--gamma", type=float, default=0.1, help="learning-rate decay factor")
    p.add_argument(
        "--cam-reference", type=_bool, default=False, help="the authors' CAM variants (method.md §8)"
    )
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=_train_classifier)

    p = sub.add_parser(
        "cache-cams", help="store the low-resolution CAMs of a frozen classifier, one file per split"
    )
    _common(p)
    p.add_argument("--splits", nargs="+", required=True, choices=SPLITS, help="splits to cache")
    p.add_argument("--checkpoint", type=Path, required=True, help="classifier best.pt for this method")
    p.add_argument("--resize-size", type=int, required=True, help="input size of the train split's CAMs")
    p.add_argument("--crop-size", type=int, required=True, help="input size of the other splits' CAMs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cam-reference", type=_bool, default=False)
    p.add_argument("--out-dir", type=Path, required=True, help="writes <out-dir>/<split>.pt")
    p.set_defaults(func=_cache_cams)

    p = sub.add_parser("train-decoder", help="phase 2: train the F-CAM decoder from cached CAMs")
    _common(p)
    _sgd(p)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--cams", type=Path, required=True, help="CAM cache of the train split")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--n-fg", type=int, default=1)
    p.add_argument("--n-bg", type=int, default=1)
    p.add_argument("--bg-fraction", type=float, default=0.1)
    p.add_argument("--erosion", type=int, default=11)
    p.add_argument("--dilation", type=int, default=3)
    for name, weight in (("pce", 1.0), ("crf", 2e-9), ("size", 0.1)):
        p.add_argument(
            f"--{name}-weight", type=float, default=weight, help=f"weight of the {name} term (0 = off)"
        )
        p.add_argument(f"--{name}-start", type=int, default=0, help="first epoch (0-based) of the term")
        p.add_argument(f"--{name}-end", type=_optional_int, default=None, help="last epoch (0-based) or none")
    p.add_argument("--crf-sigma-rgb", type=float, default=15.0)
    p.add_argument("--crf-sigma-xy", type=float, default=100.0)
    p.add_argument("--crf-scale", type=float, default=1.0)
    p.add_argument("--barrier-t0", type=float, default=1.0)
    p.add_argument("--barrier-factor", type=float, default=1.01)
    p.add_argument("--barrier-t-max", type=float, default=10.0)
    p.add_argument(
        "--terms",
        nargs="+",
        choices=("pce", "crf", "size"),
        default=["pce", "crf", "size"],
        help="loss terms to use (the ablation turns some off); default all",
    )
    p.set_defaults(func=_train_decoder)

    p = sub.add_parser("ui", help="serve the MLflow UI over fcam's runs (127.0.0.1 by default)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (the UI has no authentication)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--tracking-uri", help="store to serve (default: sqlite mlflow.db at the repository root)")
    p.set_defaults(func=_ui)

    p = sub.add_parser("evaluate", help="threshold-sweep evaluation of the baseline or F-CAM on a split")
    _common(p)
    p.add_argument("--variant", required=True, choices=VARIANTS)
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--cams", type=Path, help="baseline: CAM cache of the split")
    p.add_argument("--classifier", type=Path, help="fcam: classifier checkpoint")
    p.add_argument("--decoder-best", type=Path, help="fcam: best decoder checkpoint")
    p.add_argument("--decoder-last", type=Path, help="fcam: last decoder checkpoint")
    p.add_argument("--size", type=int, default=224, help="model input size at evaluation")
    p.add_argument("--step", type=float, default=0.001)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=_evaluate)
