"""Parameter files: every preset is valid; each mistake is one error naming the file, line and key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from fcam.errors import ConfigError
from fcam.pipeline.params import (
    apply_overrides,
    check_data_root,
    load_params,
    parse_assignment,
    validate_params,
)
from tests.jobs import REPO, preset, write_params

PRESETS = [REPO / "params.yaml", *sorted((REPO / "workflow" / "presets").glob("*.yaml"))]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_every_preset_is_valid(path):
    params = load_params(path)
    assert params.datasets
    assert params.seeds


@pytest.fixture
def params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["classifier"].__setitem__("epochs", "six"),
            "classifier.epochs: expected integer, got 'six'",
        ),
        (
            lambda c: c["classifier"].__setitem__("epochs", 1.0),
            "classifier.epochs: expected integer, got 1.0",
        ),
        (
            lambda c: c["backbones"].__setitem__("alexnet", {"classifier": {}, "decoder": {}}),
            "backbones.alexnet",
        ),
        (lambda c: c["backbones"]["vgg16"].pop("decoder"), "backbones.vgg16.decoder: missing"),
        (
            lambda c: c["backbones"]["vgg16"]["classifier"].__setitem__("lr", 0),
            "backbones.vgg16.classifier.lr",
        ),
        (
            lambda c: c["backbones"]["vgg16"]["classifier"].__setitem__("lrr", 1),
            "backbones.vgg16.classifier.lrr: unknown key",
        ),
        (lambda c: c["decoder"].__setitem__("lrr", 0.1), "decoder.lrr: unknown key"),
        (lambda c: c["classifier"].pop("lr"), "classifier.lr: missing"),
        (lambda c: c.pop("seeds"), "seeds: missing"),
        (
            lambda c: c["datasets"].__setitem__("imagenet", {"classifier": {}, "decoder": {}}),
            "datasets.imagenet",
        ),
        (lambda c: c["decoder"]["loss"]["crf"].__setitem__("weight", -1.0), "decoder.loss.crf.weight"),
        (lambda c: c.__setitem__("device", "gpu"), "device"),
        (lambda c: c["synth"].pop("synth_masks"), "synth.synth_masks: missing"),
        (lambda c: c.__setitem__("seeds", [0, 0]), "seeds: [0, 0] has non-unique elements"),
        (lambda c: c["images"].__setitem__("crop_size", 512), "images.crop_size: 512 exceeds resize_size"),
        (
            lambda c: c["decoder"]["loss"]["pce"].update(start_epoch=3, end_epoch=1),
            "decoder.loss.pce.end_epoch",
        ),
        (
            lambda c: c["datasets"]["synth_masks"]["decoder"].update(
                loss={"size": {"start_epoch": 3, "end_epoch": 2}}
            ),
            "datasets.synth_masks.decoder.loss.size.end_epoch",
        ),
        (
            lambda c: c["datasets"]["synth_boxes"]["classifier"].__setitem__("lr", 0.5),
            "backbones.vgg16.classifier.lr: also set by datasets.synth_boxes.classifier.lr",
        ),
        (
            lambda c: c["ablation"]["variants"].__setitem__("crf", ["crf"]),
            "ablation.variants.crf: every variant keeps pce",
        ),
        (
            lambda c: c["ablation"]["variants"].__setitem__("all", ["pce", "crf", "size"]),
            "the full loss is the main",
        ),
        (lambda c: c["ablation"].__setitem__("method", "scorecam"), "ablation.method"),
        (lambda c: c["search"].__setitem__("bg_fraction", [0.1, 1.5]), "search.bg_fraction[1]"),
    ],
)
def test_mistakes_name_the_key(params, mutate, message):
    bad = copy.deepcopy(params)
    mutate(bad)
    with pytest.raises(ConfigError, match=r"^params\.yaml") as err:
        validate_params(bad)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("decoder.lr", ".nan"),
        ("classifier.lr", ".inf"),
        ("evaluate.step", ".nan"),
        ("decoder.loss.crf.weight", "-.inf"),
    ],
)
def test_non_finite_numbers_are_refused_with_file_line_and_key(tmp_path, key, text):
    """NaN and infinities pass JSON-schema bounds; they are refused anywhere, naming the key."""
    path = write_params(tmp_path, {key: "PLACEHOLDER"})
    path.write_text(path.read_text().replace("PLACEHOLDER", text))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert re.match(
        rf"^{re.escape(str(path))}:\d+: {re.escape(key)}: expected a finite number", str(err.value)
    )


def test_nan_inside_a_list_and_an_override_are_refused(tmp_path):
    path = write_params(tmp_path, {"search.bg_fraction": [0.1, "PLACEHOLDER"]})
    path.write_text(path.read_text().replace("PLACEHOLDER", ".nan").replace("'.nan'", ".nan"))
    with pytest.raises(ConfigError, match=r"search\.bg_fraction\[1\]: expected a finite number"):
        load_params(path)


def test_exponent_without_a_dot_is_a_float_as_in_yaml_1_2(tmp_path):
    path = write_params(tmp_path)
    path.write_text(path.read_text().replace("weight: 3.0e-07", "weight: 3e-7"))
    assert "3e-7" in path.read_text()
    assert load_params(path)["decoder"]["loss"]["crf"]["weight"] == pytest.approx(3e-7)


def test_error_names_the_preset_file_and_the_line(tmp_path):
    path = write_params(tmp_path, {"classifier.epochs": "ten"}, name="my-preset.yaml")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "epochs: ten" in text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert str(err.value) == f"{path}:{line}: classifier.epochs: expected integer, got 'ten'"


def test_a_preset_missing_a_key_is_an_error_not_a_default(tmp_path):
    """A preset is the whole configuration: nothing is inherited from params.yaml."""
    data = preset("smoke")
    del data["classifier"]["epochs"]
    path = tmp_path / "partial.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"partial\.yaml:\d+: classifier\.epochs: missing"):
        load_params(path)


def test_a_key_written_twice_is_an_error_naming_both_lines(tmp_path):
    path = write_params(tmp_path)
    text = path.read_text().replace("preset: smoke\n", "preset: smoke\npreset: other\n")
    path.write_text(text)
    with pytest.raises(
        ConfigError,
        match=r"params\.yaml:line 2: key 'preset' written twice in one mapping \(first at line 1\)",
    ):
        load_params(path)


def test_unreadable_params_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("classifier: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_overrides_and_assignments():
    assert parse_assignment("decoder.lr=1e-3") == ("decoder.lr", 0.001)
    assert parse_assignment("seeds=[0, 1]") == ("seeds", [0, 1])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignment("decoder.lr")
    data = {"decoder": {"lr": 0.1}}
    assert apply_overrides(data, {"decoder.lr": 0.2}) == {"decoder": {"lr": 0.2}}
    assert data == {"decoder": {"lr": 0.1}}
    with pytest.raises(ConfigError, match="'decodr' is not a section"):
        apply_overrides(data, {"decodr.lr": 0.2})


def test_set_overrides_are_validated_and_named(tmp_path):
    path = write_params(tmp_path)
    with pytest.raises(ConfigError, match=r"with --set decoder\.lr=-1\).*decoder\.lr"):
        load_params(path, {"decoder.lr": -1})
    assert load_params(path, {"decoder.lr": 0.5})["decoder"]["lr"] == 0.5


def test_sections_apply_dataset_and_backbone_overrides():
    # The default preset overrides no dataset: one is added here.
    params = load_params(REPO / "params.yaml", {"datasets.synth_masks.decoder": {"epochs": 3}})
    assert params.section("classifier", ds="synth_boxes", backbone="vgg16")["lr"] == 0.002
    assert (
        params.section("classifier", ds="synth_boxes", backbone="resnet50")["lr"]
        == params["classifier"]["lr"]
    )
    assert params.section("decoder", ds="synth_masks", backbone="resnet50")["epochs"] == 3
    assert (
        params.section("decoder", ds="synth_boxes", backbone="resnet50")["epochs"]
        == params["decoder"]["epochs"]
        != 3
    )
    paper = load_params(REPO / "workflow" / "presets" / "paper.yaml")
    assert paper.section("classifier", ds="openimages", backbone="vgg16")["epochs"] == 10
    assert paper.section("classifier", ds="cub", backbone="vgg16")["epochs"] == 50


def test_search_settings_are_named_by_their_values():
    paper = load_params(REPO / "workflow" / "presets" / "paper.yaml")
    names = [s.name for s in paper.settings]
    assert len(names) == 14
    assert names[:3] == ["nbg0.1-alpha1", "nbg0.1-alpha0.1", "nbg0.2-alpha1"]
    assert paper.setting("nbg0.7-alpha0.1").bg_fraction == 0.7
    with pytest.raises(ConfigError, match="not in the grid"):
        paper.setting("nbg0.8-alpha1")


# --- data_root stays inside the repository ---

REPO_ITSELF = "is the repository itself"
OUTSIDE = "is not a relative path inside the repository"
LEAVES = "leaves the repository"
NOT_NORMAL = "is not in normal form"
UNSAFE = "may hold only letters, digits"


@pytest.mark.parametrize("value", ["data", "datasets/wsol", "my-data_2.0"])
def test_data_root_inside_the_repository_is_accepted(params, value):
    params["data_root"] = value
    validate_params(params)
    check_data_root(value)


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
        ("data;rm", UNSAFE),
        ("$HOME/data", UNSAFE),
        ("results", "overlaps results/, the pipeline's results"),
        ("reports/data", "overlaps reports/"),
        (".dvc/data", "overlaps .dvc/, DVC's own folder"),
        (".snakemake", "overlaps .snakemake/, Snakemake's own folder"),
        ("Results", "overlaps results/"),  # one folder on case-insensitive file systems
    ],
)
def test_data_root_outside_its_own_folder_is_refused(params, value, message):
    params["data_root"] = value
    with pytest.raises(ConfigError) as err:
        validate_params(params)
    text = str(err.value)
    assert text.startswith(f"params.yaml: data_root: {value!r} "), text
    assert message in text, text


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c, v: c["ablation"]["variants"].__setitem__(v, ["pce"]), "ablation.variants"),
        (lambda c, v: c.__setitem__("preset", v), "preset"),
    ],
    ids=["variant", "preset"],
)
@pytest.mark.parametrize("value", ["..", ".", "../x", "a/b", "/abs", ".hidden"])
def test_names_used_in_paths_cannot_hold_separators_or_dots(params, mutate, key, value):
    """Variant names become folders; the preset is a tag, but kept a plain name too."""
    bad = copy.deepcopy(params)
    mutate(bad, value)
    with pytest.raises(ConfigError, match=rf"^params\.yaml(:\d+)?: {re.escape(key)}"):
        validate_params(bad)


def test_schema_file_ships_with_the_package():
    from fcam.pipeline.params import SCHEMA

    assert SCHEMA.is_file()
    assert Path(SCHEMA).parent.name == "pipeline"
