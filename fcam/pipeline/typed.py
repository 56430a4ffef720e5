"""Strict conversion of a job's resolved parameters into its frozen config dataclass.

:func:`from_mapping` fills every field of a (nested) frozen dataclass from a mapping with the same
keys, and refuses both an unknown key and a missing one, naming it. So a parameter can never be
silently dropped on its way to a job (a renamed field is an error, not a fallback to a default),
and no job relies on a constructor default: the parameter files hold the only defaults.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from fcam.errors import ConfigError

__all__ = ["from_mapping"]

T = TypeVar("T")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where=where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp)
        return tuple(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_mapping(cls: type[T], mapping: Mapping[str, Any], *, where: str = "params") -> T:
    """Build ``cls`` (a dataclass, possibly nested) from ``mapping``, key for field.

    Args:
        cls: the frozen dataclass.
        mapping: the values; nested dataclass fields take nested mappings, ``tuple[...]`` fields lists.
        where: how messages name the mapping (the parameter section).

    Raises:
        ConfigError: ``mapping`` is not a mapping, lacks a field, or has a key no field takes.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {mapping!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - fields)
    missing = sorted(fields - set(mapping))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: no field of {cls.__name__} takes it")
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: missing (needed by {cls.__name__})")
    hints = _hints(cls)
    return cls(**{name: _convert(hints[name], mapping[name], f"{where}.{name}") for name in fields})
