"""Config dataclasses from plain dicts (saved model configs, YAML), with unknown keys named as errors."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], values: dict[str, Any] | None) -> T:
    """`cls(**values)`; a key that is not a field of `cls` is an error listing the valid ones."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; valid keys are {sorted(known)}")
    return cls(**values)
