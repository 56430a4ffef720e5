"""The data stages of the pipeline: generate a synthetic dataset; download and prepare a real one."""

from __future__ import annotations

from typing import Any

from fcam.constants import DATASET_KINDS
from fcam.io import remove_stale_temporaries
from fcam.pipeline.sections import SynthParams
from fcam.pipeline.stages import JobSpec
from fcam.pipeline.typed import from_mapping

__all__ = ["run_download", "run_prepare", "run_synth"]


def run_synth(spec: JobSpec, tracker: Any) -> None:
    """The ``synth`` stage: the synthetic benchmark's images and metadata (:mod:`fcam.data.synthetic`)."""
    from fcam.data.synthetic import make_synthetic

    synth = from_mapping(SynthParams, spec.config["synth"], where=f"synth.{spec.wildcards['ds']}")
    remove_stale_temporaries([spec.path("root"), spec.path("meta")])
    make_synthetic(
        spec.path("root"),
        spec.path("meta"),
        flavour=DATASET_KINDS[spec.wildcards["ds"]],
        num_classes=synth.classes,
        n_train=synth.train,
        n_val=synth.val,
        n_test=synth.test,
        size=synth.size,
        seed=synth.seed,
    )


def run_download(spec: JobSpec, tracker: Any) -> None:
    """The ``download`` stage: every archive of a real dataset, checksum-verified and resumable."""
    from fcam.data.download import download_dataset

    files = download_dataset(
        spec.wildcards["ds"],
        spec.path("archives").parent.parent,
        allow_unverified=bool(spec.config["download"]["allow_unverified"]),
        progress=False,
    )
    tracker.log_metrics({"archives": len(files)})


def run_prepare(spec: JobSpec, tracker: Any) -> None:
    """The ``prepare`` stage: extract the archives, write the wsolevaluation metadata, verify."""
    from fcam.data.prepare import prepare_dataset

    report = prepare_dataset(spec.wildcards["ds"], spec.path("archives").parent.parent, progress=False)
    tracker.log_metrics({f"{split}_images": counts["images"] for split, counts in report["splits"].items()})
