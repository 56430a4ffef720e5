"""The paper preset holds the paper's protocol (docs/fidelity.md): each value checked here."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcam.constants import CAM_METHODS
from fcam.losses.crf import PAPER_CRF_WEIGHT_EXACT
from fcam.pipeline.params import load_params
from fcam.pipeline.stages import Pipeline
from tests.jobs import REPO

PAPER = load_params(REPO / "workflow" / "presets" / "paper.yaml")


def test_data_and_geometry():
    assert PAPER.datasets == ["cub", "openimages"]
    assert PAPER.backbones == ["vgg16", "inceptionv3", "resnet50"]
    assert PAPER.methods == list(CAM_METHODS)
    assert PAPER["images"] == {"resize_size": 256, "crop_size": 224}
    assert PAPER.seeds == [0]  # the paper reports single runs


def test_phase1_optimiser_schedule_and_per_dataset_epochs():
    cub = PAPER.section("classifier", ds="cub", backbone="resnet50")
    oi = PAPER.section("classifier", ds="openimages", backbone="resnet50")
    assert (cub["pretrained"], cub["width"], cub["per_method"]) == ("imagenet", 1.0, True)
    assert (cub["epochs"], cub["step_size"], cub["gamma"]) == (50, 15, 0.1)
    assert (oi["epochs"], oi["step_size"]) == (10, 3)  # wsolevaluation's OpenImages schedule
    assert (cub["lr"], cub["batch_size"], cub["momentum"], cub["nesterov"], cub["weight_decay"]) == (
        0.0017,
        32,
        0.9,
        True,
        1e-4,
    )


def test_cams_are_the_authors_variants():
    assert PAPER["cams"]["reference"] is True


def test_phase2_loss_seeds_and_search():
    cub = PAPER.section("decoder", ds="cub", backbone="vgg16")
    oi = PAPER.section("decoder", ds="openimages", backbone="vgg16")
    assert (cub["epochs"], oi["epochs"]) == (50, 10)
    assert (cub["lr"], cub["batch_size"], cub["momentum"], cub["nesterov"], cub["weight_decay"]) == (
        0.01,
        32,
        0.9,
        True,
        1e-4,
    )
    assert cub["seeds"] == {"n_fg": 1, "n_bg": 1, "bg_ties": "exact", "erosion": 11, "dilation": 3}
    crf = cub["loss"]["crf"]
    assert (crf["sigma_rgb"], crf["sigma_xy"], crf["scale"]) == (15.0, 100.0, 1.0)
    assert crf["weight"] == pytest.approx(PAPER_CRF_WEIGHT_EXACT)  # the paper's 2e-9 on the authors' lattice
    assert cub["loss"]["size"]["weight"] == 0.1
    assert all(t["start_epoch"] == 0 and t["end_epoch"] is None for t in cub["loss"].values())
    assert cub["barrier"] == {"t0": 1.0, "factor": 1.01, "t_max": 10.0}
    assert PAPER["search"] == {"bg_fraction": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "pce_weight": [1.0, 0.1]}


def test_evaluation_steps():
    assert (PAPER["evaluate"]["val_step"], PAPER["evaluate"]["step"]) == (0.004, 0.001)


def test_the_dag_is_the_papers():
    """One classifier per (dataset, backbone, method), every search point, the choice on validation.

    With the authors' CAM variants XGrad-CAM is Grad-CAM's twin (fcam.cam_twins): its classifier
    (same seed, same selection scores) and decoders are Grad-CAM's; it keeps its own evaluations."""
    pipeline = Pipeline(PAPER)
    assert len(pipeline.jobs("classifier")) == 2 * 3 * 5
    assert len(pipeline.jobs("decoder")) == 2 * 3 * 5 * 14
    assert len(pipeline.jobs("evaluate_fcam")) == 2 * 3 * 6
    wc = {"ds": "cub", "backbone": "vgg16", "method": "xgradcam", "seed": "0"}
    twin = pipeline.spec("evaluate_fcam", wc, params_file="p")
    assert twin.path("classifier") == Path("results/classifier/cub/vgg16/gradcam/seed0/best.pt")
    assert twin.path("best") == Path("results/select/cub/vgg16/gradcam/seed0/best.pt")
    evaluation = pipeline.spec(
        "evaluate_fcam",
        {"ds": "cub", "backbone": "vgg16", "method": "gradcampp", "seed": "0"},
        params_file="p",
    )
    assert str(evaluation.path("best")).startswith(
        "results/select/"
    )  # the chosen decoder, not a search point
