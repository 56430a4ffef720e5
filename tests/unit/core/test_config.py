"""params.yaml validation: every preset passes; each kind of mistake names its key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from fcam.config import check_data_root, load_params, validate_params
from fcam.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "workflow" / "schemas" / "params.schema.yaml"
PRESETS = [REPO / "params.yaml", *sorted((REPO / "workflow" / "presets").glob("*.yaml"))]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_is_valid(path):
    config = load_params(path, SCHEMA)
    assert config["datasets"]


@pytest.fixture
def params():
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["classifier"].__setitem__("epochs", "six"),
            "classifier.epochs: expected integer, got 'six'",
        ),
        (
            lambda c: c["backbones"].append({"name": "alexnet", "classifier_lr": 0.1}),
            "].name: 'alexnet' is not one of",
        ),
        (lambda c: c["backbones"].append("vgg16"), "]: expected object, got 'vgg16'"),
        (
            lambda c: c["backbones"].append(dict(c["backbones"][0])),
            "].name: 'vgg16' is listed twice",
        ),
        (lambda c: c["backbones"][0].__setitem__("classifier_lr", 0), "backbones[0].classifier_lr"),
        (lambda c: c["decoder"].__setitem__("lrr", 0.1), "decoder.lrr: unknown key"),
        (lambda c: c["backbones"][0].pop("classifier_lr"), "backbones[0].classifier_lr: missing"),
        (lambda c: c["classifier"].__setitem__("lr", 0.1), "classifier.lr: unknown key"),
        (
            lambda c: c["datasets"][0].__setitem__("name", "imagenet"),
            "datasets[0].name: 'imagenet' is not one of",
        ),
        (lambda c: c["decoder"]["loss"]["crf"].__setitem__("weight", -1.0), "decoder.loss.crf.weight"),
        (lambda c: c.__setitem__("device", "gpu"), "device"),
        (lambda c: c["synth"].pop("synth_masks"), "synth.synth_masks: missing"),
        (
            lambda c: c["datasets"].append(dict(c["datasets"][0])),
            "datasets[2].name: 'synth_boxes' is listed twice",
        ),
        (
            lambda c: c["classifier"].__setitem__("crop_size", 512),
            "classifier.crop_size: 512 exceeds resize_size",
        ),
        (
            lambda c: c["decoder"]["loss"]["pce"].update(start_epoch=3, end_epoch=1),
            "decoder.loss.pce.end_epoch",
        ),
    ],
)
def test_mistakes_name_the_key(params, mutate, message):
    bad = copy.deepcopy(params)
    mutate(bad)
    with pytest.raises(ConfigError, match=r"^params\.yaml: ") as err:
        validate_params(bad, SCHEMA)
    assert message in str(err.value)


def test_unreadable_params_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("classifier: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad, SCHEMA)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml", SCHEMA)


def test_paper_preset_matches_method_md():
    """The paper preset holds exactly the reference hyper-parameters of docs/method.md §6."""
    c = load_params(REPO / "workflow" / "presets" / "paper.yaml", SCHEMA)
    assert {d["name"]: d["decoder_epochs"] for d in c["datasets"]} == {"cub": 50, "openimages": 10}
    # method.md §6 gives the base lr of ResNet50 (0.0017); the preset uses it for every backbone.
    assert c["backbones"] == [
        {"name": name, "classifier_lr": 0.0017} for name in ("vgg16", "inceptionv3", "resnet50")
    ]
    assert c["methods"] == ["cam", "gradcam", "gradcampp", "smoothgradcampp", "xgradcam", "layercam"]
    clf = c["classifier"]
    assert (clf["pretrained"], clf["epochs"], clf["batch_size"]) == ("imagenet", 50, 32)
    assert (clf["momentum"], clf["nesterov"], clf["weight_decay"]) == (0.9, True, 1e-4)
    assert (clf["step_size"], clf["gamma"], clf["resize_size"], clf["crop_size"]) == (15, 0.1, 256, 224)
    assert clf["val_step"] == 0.004
    assert c["evaluate"]["step"] == 0.001
    dec = c["decoder"]
    assert (dec["lr"], dec["batch_size"], dec["momentum"], dec["nesterov"], dec["weight_decay"]) == (
        0.01,
        32,
        0.9,
        True,
        1e-4,
    )
    assert dec["seeds"] == {"n_fg": 1, "n_bg": 1, "bg_fraction": 0.1, "erosion": 11, "dilation": 3}
    loss = dec["loss"]
    assert (loss["pce"]["weight"], loss["crf"]["weight"], loss["size"]["weight"]) == (1.0, 2e-9, 0.1)
    assert (loss["crf"]["sigma_rgb"], loss["crf"]["sigma_xy"], loss["crf"]["scale"]) == (15.0, 100.0, 1.0)
    assert all(t["start_epoch"] == 0 and t["end_epoch"] is None for t in loss.values())
    assert dec["barrier"] == {"t0": 1.0, "factor": 1.01, "t_max": 10.0}


# --- paths from params: data_root stays inside the repository, names never become paths ---

REPO_ITSELF = "is the repository itself"
OUTSIDE = "is not a relative path inside the repository"
LEAVES = "leaves the repository"
NOT_NORMAL = "is not in normal form"
UNSAFE = "may hold only letters, digits"


@pytest.mark.parametrize("value", ["data", "datasets/wsol", "my-data_2.0"])
def test_data_root_inside_the_repository_is_accepted(params, value):
    params["data_root"] = value
    validate_params(params, SCHEMA)
    check_data_root(value)


def test_default_data_root_is_data(params):
    assert params["data_root"] == "data"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/scratch/data", OUTSIDE),
        ("~/data", OUTSIDE),
        ("..", LEAVES),
        ("../x", LEAVES),
        ("data/../../x", LEAVES),
        (".", REPO_ITSELF),
        ("data/..", REPO_ITSELF),
        ("./data", f"{NOT_NORMAL}; write 'data'"),
        ("data/", f"{NOT_NORMAL}; write 'data'"),
        ("data//x", f"{NOT_NORMAL}; write 'data/x'"),
        ("data/../other", f"{NOT_NORMAL}; write 'other'"),
        ("data;rm", UNSAFE),
        ("$HOME/data", UNSAFE),
        ("data\\x", UNSAFE),
        ("results", "overlaps results/, the pipeline's results"),
        ("results/data", "overlaps results/"),
        ("reports/data", "overlaps reports/"),
        ("logs", "overlaps logs/"),
        ("mlartifacts/x", "overlaps mlartifacts/"),
        (".dvc/data", "overlaps .dvc/, DVC's own folder"),
        (".snakemake", "overlaps .snakemake/, Snakemake's own folder"),
        (".git/x", "overlaps .git/"),
        ("Results", "overlaps results/"),  # one folder on case-insensitive file systems
    ],
)
def test_data_root_outside_its_own_folder_is_refused(params, value, message):
    params["data_root"] = value
    with pytest.raises(ConfigError) as err:
        validate_params(params, SCHEMA)
    text = str(err.value)
    assert text.startswith(f"params.yaml: data_root: {value!r} "), text
    assert message in text, text
    assert "\n" not in text


def test_data_root_outside_says_why_and_what_to_do(params):
    params["data_root"] = "../x"
    with pytest.raises(ConfigError) as err:
        validate_params(params, SCHEMA)
    assert str(err.value) == (
        "params.yaml: data_root: '../x' leaves the repository; datasets are pipeline outputs and DVC "
        "tracks none outside the repository; to keep them on another disk, make data_root a symlink "
        "(README, Datasets)"
    )


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c, v: c["datasets"][0].__setitem__("name", v), "datasets[0].name"),
        (lambda c, v: c["ablation"]["variants"][0].__setitem__("name", v), "ablation.variants[0].name"),
        (lambda c, v: c.__setitem__("preset", v), "preset"),
    ],
    ids=["dataset", "variant", "preset"],
)
@pytest.mark.parametrize("value", ["..", ".", "../x", "a/b", "/abs", ".hidden"])
def test_names_used_in_paths_cannot_hold_separators_or_dots(params, mutate, key, value):
    """Dataset and variant names become folders; the preset is a tag, but kept a plain name too."""
    bad = copy.deepcopy(params)
    mutate(bad, value)
    with pytest.raises(ConfigError, match=rf"^params\.yaml: {re.escape(key)}: "):
        validate_params(bad, SCHEMA)
