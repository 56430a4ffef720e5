"""Validation of params.yaml (and every preset) before any job runs.

The JSON schema in ``workflow/schemas/params.schema.yaml`` says what each key holds; this module
applies it and the few rules a schema cannot express, and turns the first violation into one
:class:`~fcam.errors.ConfigError` that names the key, e.g.
``params.yaml: classifier.epochs: expected integer, got 'six'``.

Paths: ``data_root`` is the only value that becomes a path as it is; it must name a folder inside
the repository (:func:`check_data_root`). Every other value that ends up in a path (dataset,
backbone and method names, ablation variant names) is an enum or a ``[a-z_]`` pattern in the
schema, so it cannot hold ``/`` or ``..``; ``preset`` is only a tag, and its pattern keeps it a
plain name anyway.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from fcam.constants import DATASET_KINDS
from fcam.errors import ConfigError

__all__ = ["RESERVED_FOLDERS", "check_data_root", "load_params", "validate_params"]

_SYNTHETIC = {"synth_boxes", "synth_masks"}

#: Top-level folders of the repository that belong to the pipeline's outputs or to the tools;
#: datasets must not live inside them (``make clean``, ``dvc gc`` or Git would touch them).
RESERVED_FOLDERS: Final = {
    "results": "the pipeline's results",
    "reports": "the pipeline's reports",
    "logs": "the jobs' logs",
    "mlartifacts": "MLflow's artifacts",
    ".dvc": "DVC's own folder",
    ".snakemake": "Snakemake's own folder",
    ".git": "Git's own folder",
}

# data_root is pasted into the shell commands of Snakemake and DVC unquoted: portable
# file-name characters only.
_SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]+")
_KEEP_INSIDE = (
    "datasets are pipeline outputs and DVC tracks none outside the repository; to keep them on "
    "another disk, make data_root a symlink (README, Datasets)"
)


def _key(path: Any) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else f".{p}")
    return "".join(parts).lstrip(".") or "(top level)"


def _describe(error: Any) -> str:
    """One line for a jsonschema error: the key and what was expected."""
    validator, value = error.validator, error.instance
    if validator == "additionalProperties":
        extra = sorted(set(value) - set(error.schema.get("properties", {})))
        return f"{_key(error.absolute_path + type(error.absolute_path)(extra[:1]))}: unknown key"
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{_key([*list(error.absolute_path), missing])}: missing"
    if validator == "enum":
        return f"{_key(error.absolute_path)}: {value!r} is not one of {error.validator_value}"
    if validator == "type":
        return f"{_key(error.absolute_path)}: expected {error.validator_value}, got {value!r}"
    return f"{_key(error.absolute_path)}: {error.message}"


def check_data_root(value: str, *, source: str = "params.yaml") -> None:
    """Check that ``data_root`` names a folder inside the repository, in normal form.

    The check is on the text only (the working folder is the repository root for Snakemake and
    DVC): a symlinked ``data_root`` that points elsewhere is accepted, which is how datasets on
    another disk are used.

    Args:
        value: the ``data_root`` parameter, e.g. ``data``.
        source: how to name the params in messages (the file name).

    Raises:
        ConfigError: ``value`` is absolute, starts with ``~``, leaves the repository through
            ``..``, is the repository itself, is not in normal form, holds characters other than
            letters, digits and ``. _ - /``, or lies inside one of :data:`RESERVED_FOLDERS`.
    """
    prefix = f"{source}: data_root: {value!r}"
    if value.startswith(("/", "~")):
        raise ConfigError(f"{prefix} is not a relative path inside the repository; {_KEEP_INSIDE}")
    if not _SAFE_PATH.fullmatch(value):
        raise ConfigError(f"{prefix} may hold only letters, digits and . _ - / (it goes into shell commands)")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise ConfigError(f"{prefix} leaves the repository; {_KEEP_INSIDE}")
    if normal == ".":
        raise ConfigError(f"{prefix} is the repository itself; name a folder inside it, e.g. 'data'")
    if normal != value:
        raise ConfigError(f"{prefix} is not in normal form; write {normal!r}")
    top = normal.split("/", 1)[0]
    for folder, owner in RESERVED_FOLDERS.items():
        if top.casefold() == folder:  # casefold: macOS file systems ignore case
            raise ConfigError(f"{prefix} overlaps {folder}/, {owner}; use a folder of its own, e.g. 'data'")


def _unique_names(config: Mapping[str, Any], key: str, source: str) -> list[str]:
    """The ``name`` of each entry of the list ``config[key]``; a name listed twice is an error."""
    names = [entry["name"] for entry in config[key]]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{source}: {key}[{i}].name: {name!r} is listed twice")
    return names


def validate_params(config: Mapping[str, Any], schema_path: Path, *, source: str = "params.yaml") -> None:
    """Check a parameter mapping against the schema and fcam's cross-key rules.

    Args:
        config: the parsed params (Snakemake's ``config``).
        schema_path: the JSON schema (YAML) file.
        source: how to name the params in messages (the file name).

    Raises:
        ConfigError: naming the first offending key.
    """
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(dict(config)),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        raise ConfigError(f"{source}: {_describe(errors[0])}")
    check_data_root(config["data_root"], source=source)
    for name in _unique_names(config, "datasets", source):
        if name in _SYNTHETIC and name not in config.get("synth", {}):
            raise ConfigError(f"{source}: synth.{name}: missing (dataset {name!r} is synthetic)")
        if name not in _SYNTHETIC and name not in config.get("download", {}):
            raise ConfigError(f"{source}: download.{name}: missing (dataset {name!r} is downloaded)")
        assert name in DATASET_KINDS  # the schema's enum guarantees it
    clf = config["classifier"]
    if clf["crop_size"] > clf["resize_size"]:
        raise ConfigError(
            f"{source}: classifier.crop_size: {clf['crop_size']} exceeds resize_size {clf['resize_size']}"
        )
    backbones = _unique_names(config, "backbones", source)
    ablation = config["ablation"]
    if ablation["backbone"] not in backbones:
        raise ConfigError(f"{source}: ablation.backbone: {ablation['backbone']!r} is not in backbones")
    names = [v["name"] for v in ablation["variants"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: ablation.variants: names must be unique, got {names}")
    for name, term in config["decoder"]["loss"].items():
        if term["end_epoch"] is not None and term["end_epoch"] < term["start_epoch"]:
            raise ConfigError(f"{source}: decoder.loss.{name}.end_epoch: before start_epoch")


def load_params(path: Path, schema_path: Path) -> dict[str, Any]:
    """Read and validate a params file.

    Raises:
        ConfigError: the file is missing, is not YAML, or violates the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    validate_params(config, schema_path, source=path.name)
    return config
