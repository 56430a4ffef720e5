"""The parameter file: reading, validation and the values one job sees.

A parameter file (``params.yaml`` or a preset in ``workflow/presets/``) is the whole configuration
of a pipeline run: nothing is inherited from another file, and a missing key is an error that names
it. It is checked against ``fcam/pipeline/params.schema.yaml`` plus the rules a schema cannot
express, and every error is one :class:`~fcam.errors.ConfigError` naming the file, the line and the
key, e.g. ``workflow/presets/paper.yaml:31: classifier.epochs: expected integer, got 1.0``.

Reading follows YAML 1.2 for numbers (``1e-3`` is a float, as DVC reads it, not a string as YAML
1.1 would have it); a key written twice in one mapping is an error; NaN and infinities are refused
everywhere, and a float is not accepted where an integer is expected.

Values that differ per dataset or per backbone live in the entries of ``datasets`` and
``backbones``: their ``classifier`` and ``decoder`` objects override keys of the sections of the
same name for that dataset or backbone only (:meth:`Params.section`). One key overridden by both a
dataset and a backbone is an error: there is no silent precedence.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from fcam.cam_twins import computed_as, computed_methods
from fcam.errors import ConfigError

__all__ = [
    "OVERRIDABLE",
    "RESERVED_FOLDERS",
    "SCHEMA",
    "Params",
    "Setting",
    "apply_overrides",
    "check_data_root",
    "load_params",
    "parse_assignment",
    "read_yaml",
    "validate_params",
]

#: The schema every parameter file is checked against (it says what each key means).
SCHEMA: Final = Path(__file__).with_name("params.schema.yaml")

#: Sections whose keys a dataset or backbone entry may override.
OVERRIDABLE: Final = ("classifier", "decoder")

_SYNTHETIC: Final = frozenset({"synth_boxes", "synth_masks"})

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

# YAML 1.2 floats: an exponent without a dot (1e-3) is a number, as DVC (ruamel, YAML 1.2) reads it.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 exponent floats and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} written twice in one mapping "
                    f"(first at line {seen[key] + 1})"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _key_lines(node: yaml.Node, path: Path_ = ()) -> Iterator[tuple[Path_, int]]:
    """(key path, 1-based line) of every key and list item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, key_node.value)
            yield sub, key_node.start_mark.line + 1
            yield from _key_lines(value_node, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            yield sub, item.start_mark.line + 1
            yield from _key_lines(item, sub)


def read_yaml(path: Path) -> tuple[Any, dict[Path_, int]]:
    """Read a YAML file with fcam's loader.

    Returns:
        The parsed document and the line of every key path in it.

    Raises:
        ConfigError: the file is missing, is not YAML, or writes a key twice (naming the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except ConfigError as exc:
        raise ConfigError(f"{path}:{exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return data, dict(_key_lines(node)) if node is not None else {}


def _key(path: Sequence[str | int]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "(top level)"


class _Errors:
    """Formats errors as ``<file>:<line>: <key>: <problem>`` (the line of the key, or of its parent)."""

    def __init__(self, source: str, lines: Mapping[Path_, int]) -> None:
        self.source, self.lines = source, lines

    def __call__(self, path: Sequence[str | int], problem: str) -> ConfigError:
        where = self.source
        for end in range(len(path), 0, -1):
            if tuple(path[:end]) in self.lines:
                where = f"{self.source}:{self.lines[tuple(path[:end])]}"
                break
        return ConfigError(f"{where}: {_key(path)}: {problem}")


def _describe(error: Any) -> tuple[list[str | int], str]:
    """The key path and a one-line problem for a jsonschema error."""
    validator, value, path = error.validator, error.instance, list(error.absolute_path)
    if "propertyNames" in error.absolute_schema_path:
        allowed = error.validator_value if validator == "enum" else error.schema.get("pattern")
        return [*path, value], f"not a name allowed here (expected one of {allowed})"
    if validator == "additionalProperties":
        extra = sorted(set(value) - set(error.schema.get("properties", {})))
        return [*path, *extra[:1]], "unknown key"
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [*path, missing], "missing (a parameter file is a whole configuration: every key is required)"
    if validator == "enum":
        return path, f"{value!r} is not one of {error.validator_value}"
    if validator == "type":
        return path, f"expected {error.validator_value}, got {value!r}"
    return path, error.message


def _validator(schema: Mapping[str, Any]) -> Any:
    """A Draft 2020-12 validator whose ``integer`` is an int (not 1.0) and ``number`` not a bool."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _, v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda _, v: isinstance(v, int | float) and not isinstance(v, bool),
        }
    )
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


@functools.cache
def _schema(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: schema not found (a broken installation of fcam)")
    return yaml.safe_load(path.read_text())


def _non_finite(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _non_finite(item, (*path, i))


def _partial(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with no required keys at any depth (the schema of an override)."""
    out = {k: v for k, v in schema.items() if k != "required"}
    if "properties" in out:
        out["properties"] = {k: _partial(v) for k, v in out["properties"].items()}
    return out


def _leaves(value: Mapping[str, Any], path: Path_ = ()) -> Iterator[Path_]:
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            yield from _leaves(item, (*path, key))
        else:
            yield (*path, key)


def check_data_root(value: str, *, source: str = "params.yaml") -> None:
    """Check that ``data_root`` names a folder inside the repository, in normal form.

    The check is on the text only (the working folder is the repository root for Snakemake and
    DVC): a symlinked ``data_root`` that points elsewhere is accepted, which is how datasets on
    another disk are used.

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


def validate_params(
    config: Mapping[str, Any],
    *,
    source: str = "params.yaml",
    lines: Mapping[Path_, int] | None = None,
    schema_path: Path = SCHEMA,
) -> None:
    """Check a parameter mapping against the schema and fcam's cross-key rules.

    Args:
        config: the parsed parameter file.
        source: how to name the file in messages.
        lines: the line of each key path (from :func:`read_yaml`), for messages.
        schema_path: the JSON schema (YAML).

    Raises:
        ConfigError: naming the first offending key (and its line when known).
    """
    err = _Errors(source, lines or {})
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    for path in _non_finite(config):
        raise err(path, "expected a finite number, got NaN or infinity")
    schema = _schema(Path(schema_path))
    errors = sorted(
        _validator(schema).iter_errors(dict(config)),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        raise err(*_describe(errors[0]))
    check_data_root(config["data_root"], source=source)
    for name in config["datasets"]:
        if name in _SYNTHETIC and name not in config["synth"]:
            raise err(["synth", name], f"missing (dataset {name!r} is synthetic)")
        if name not in _SYNTHETIC and name not in config["download"]:
            raise err(["download", name], f"missing (dataset {name!r} is downloaded)")
    for scope in ("datasets", "backbones"):
        for entry, overrides in config[scope].items():
            for section in OVERRIDABLE:
                partial = {**_partial(schema["properties"][section]), "$defs": schema["$defs"]}
                for e in _validator(partial).iter_errors(overrides[section]):
                    sub, problem = _describe(e)
                    raise err([scope, entry, section, *sub], problem)
    for ds, ds_entry in config["datasets"].items():
        for bb, bb_entry in config["backbones"].items():
            for section in OVERRIDABLE:
                both = set(_leaves(ds_entry[section])) & set(_leaves(bb_entry[section]))
                if both:
                    leaf = sorted(both)[0]
                    raise err(
                        ["backbones", bb, section, *leaf],
                        f"also set by {_key(['datasets', ds, section, *leaf])}; "
                        "set it in one place (no precedence)",
                    )
    for section in OVERRIDABLE:
        for scope in ("datasets", "backbones"):
            entries = list(config[scope].values())
            dead = set.intersection(*(set(_leaves(e[section])) for e in entries)) if entries else set()
            if dead:
                leaf = sorted(dead)[0]
                raise err(
                    [section, *leaf],
                    f"every entry of {scope} overrides it, so this value is never used; "
                    f"keep it here and drop one override",
                )
    for ds, ds_entry in config["datasets"].items():
        for bb, bb_entry in config["backbones"].items():
            clf = {**config["classifier"], **ds_entry["classifier"], **bb_entry["classifier"]}
            if clf["pretrained"] == "imagenet" and clf["width"] != 1:
                problem = f"{clf['width']} with ImageNet weights ({ds}, {bb}): they need 1"
                raise err(["classifier", "width"], problem)
    images = config["images"]
    if images["crop_size"] > images["resize_size"]:
        raise err(
            ["images", "crop_size"], f"{images['crop_size']} exceeds resize_size {images['resize_size']}"
        )
    ablation = config["ablation"]
    if ablation["variants"] and ablation["backbone"] not in config["backbones"]:
        raise err(["ablation", "backbone"], f"{ablation['backbone']!r} is not in backbones")
    if ablation["variants"] and ablation["method"] not in config["methods"]:
        raise err(["ablation", "method"], f"{ablation['method']!r} is not in methods")
    for name, terms in ablation["variants"].items():
        if "pce" not in terms:
            raise err(
                ["ablation", "variants", name], "every variant keeps pce (the seeds are the only labels)"
            )
        if set(terms) == {"pce", "crf", "size"}:
            raise err(
                ["ablation", "variants", name],
                "the full loss is the main F-CAM decoder, which the ablation table shows already",
            )
    for scope_path, section in _decoder_sections(config):
        for name, term in section.get("loss", {}).items():
            start, end = term.get("start_epoch", 0), term.get("end_epoch")
            if end is not None and end <= start:
                raise err([*scope_path, "loss", name, "end_epoch"], f"{end} is not after start_epoch {start}")


def _decoder_sections(config: Mapping[str, Any]) -> Iterator[tuple[list[str], Mapping[str, Any]]]:
    yield ["decoder"], config["decoder"]
    for scope in ("datasets", "backbones"):
        for entry, overrides in config[scope].items():
            yield [scope, entry, "decoder"], overrides["decoder"]


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``key.path=value`` (a ``--set`` flag); the value is read as YAML 1.2 (``1e-3``, ``[0, 1]``).

    Raises:
        ConfigError: no ``=``, or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. decoder.lr=0.01")
    try:
        parsed = yaml.load(value, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {exc}") from exc
    return key.strip(), parsed


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with each dotted key of ``overrides`` set to its value.

    Raises:
        ConfigError: a key whose parent is not a mapping of the file.
    """
    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node: Any = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"--set {dotted}: {part!r} is not a section of the parameter file")
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(parts[:-1])} is not a mapping")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def _short(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Setting:
    """One point of the decoder's validation search (the paper searches n- and alpha).

    Attributes:
        bg_fraction: n-, the fraction of lowest-CAM pixels that form the background region C-.
        pce_weight: alpha, the weight of the partial cross-entropy.
    """

    bg_fraction: float
    pce_weight: float

    @property
    def name(self) -> str:
        """The setting as a path and wildcard component, e.g. ``nbg0.1-alpha1``."""
        return f"nbg{_short(self.bg_fraction)}-alpha{_short(self.pce_weight)}"

    def as_dict(self) -> dict[str, Any]:
        """``name``, ``bg_fraction`` and ``pce_weight`` (as written to metrics and MLflow)."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Params:
    """A validated parameter file.

    Attributes:
        data: the parsed file (with any ``--set`` overrides applied).
        source: the file's path as given (messages name it).
    """

    data: Mapping[str, Any]
    source: str

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def datasets(self) -> list[str]:
        return list(self.data["datasets"])

    @property
    def backbones(self) -> list[str]:
        return list(self.data["backbones"])

    @property
    def methods(self) -> list[str]:
        return list(self.data["methods"])

    @property
    def computed_methods(self) -> list[str]:
        """The methods whose CAMs and decoders are computed: one per group of twins
        (:mod:`fcam.cam_twins`); every method of ``methods`` is served by one of them."""
        return computed_methods(self.methods, self.data["cams"]["reference"])

    def computed_as(self, method: str) -> str:
        """The computed method that serves ``method`` (itself unless it is a twin)."""
        return computed_as(method, self.data["cams"]["reference"])

    @property
    def seeds(self) -> list[int]:
        return list(self.data["seeds"])

    @property
    def synthetic(self) -> list[str]:
        return [ds for ds in self.datasets if ds in _SYNTHETIC]

    @property
    def real(self) -> list[str]:
        return [ds for ds in self.datasets if ds not in _SYNTHETIC]

    @property
    def settings(self) -> list[Setting]:
        """The search grid, in the order of the file (n- outer, alpha inner)."""
        search = self.data["search"]
        return [Setting(float(n), float(a)) for n in search["bg_fraction"] for a in search["pce_weight"]]

    def setting(self, name: str) -> Setting:
        """The grid point called ``name``.

        Raises:
            ConfigError: ``name`` is not a point of the grid.
        """
        for s in self.settings:
            if s.name == name:
                return s
        names = [s.name for s in self.settings]
        raise ConfigError(f"{self.source}: search: setting {name!r} is not in the grid {names}")

    @property
    def ablation_variants(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.data["ablation"]["variants"].items()}

    def section(self, name: str, *, ds: str | None = None, backbone: str | None = None) -> dict[str, Any]:
        """A section with the overrides of a dataset and a backbone applied (a new dict).

        Args:
            name: a top-level key; only ``classifier`` and ``decoder`` take overrides.
            ds, backbone: whose overrides to apply (None: none).
        """
        out = copy.deepcopy(dict(self.data[name]))
        if name in OVERRIDABLE:
            if ds is not None:
                _merge(out, self.data["datasets"][ds][name])
            if backbone is not None:
                _merge(out, self.data["backbones"][backbone][name])
        return out


def load_params(
    path: Path | str,
    overrides: Mapping[str, Any] | None = None,
    *,
    schema_path: Path = SCHEMA,
) -> Params:
    """Read and validate a parameter file.

    Args:
        path: ``params.yaml`` or a preset.
        overrides: dotted keys to set before validation (``--set decoder.lr=0.01``).
        schema_path: the JSON schema.

    Raises:
        ConfigError: the file is missing, is not YAML, or is not a valid configuration.
    """
    data, lines = read_yaml(Path(path))
    source = str(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    if overrides:
        data = apply_overrides(data, overrides)
        source = f"{source} (with --set {', '.join(f'{k}={v}' for k, v in overrides.items())})"
    validate_params(data, source=source, lines=lines, schema_path=schema_path)
    return Params(data=data, source=str(path))
