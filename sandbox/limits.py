"""Hard limits of one sandboxed block, as a value that can be recorded in an event."""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, fields, replace
from typing import Any

from sandbox.errors import BadRequest

MIB = 1024 * 1024

# (minimum, maximum) of each field; None means "no maximum beyond the type's".
_RANGES: dict[str, tuple[float, float]] = {
    "wall_seconds": (0.1, 3600.0),
    "cpu_seconds": (0.1, 3600.0),
    "memory_mb": (16, 65536),
    "tasks": (1, 4096),
    "file_size_mb": (1, 4096),
    "open_files": (16, 65536),
    "tmpfs_mb": (1, 4096),
    "output_bytes": (1024, 256 * MIB),
}


@dataclass(frozen=True)
class Limits:
    """Wall/CPU time, memory (no swap), tasks, file size, open files, tmpfs and output caps."""

    wall_seconds: float = 10.0
    cpu_seconds: float | None = None  # None: the same as wall_seconds
    memory_mb: int = 256
    tasks: int = 64  # processes and threads together
    file_size_mb: int = 16
    open_files: int = 256
    tmpfs_mb: int = 64
    output_bytes: int = MIB  # per stream (stdout and stderr each keep this much of their head)

    def __post_init__(self) -> None:
        for name, whole, low, high in _CHECKS:
            value = getattr(self, name)
            if value is None and name == "cpu_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadRequest(f"limit {name} must be a number, not {_show(value)}")
            if whole and not isinstance(value, int):
                raise BadRequest(f"limit {name} must be a whole number, not {_show(value)}")
            # Compare first: math.isfinite() overflows on integers too large for a float.
            if not (low <= value <= high and math.isfinite(value)):
                raise BadRequest(
                    f"limit {name}={_show(value)} is out of range ({low:g} to {high:g})"
                )

    @property
    def cpu_limit(self) -> float:
        """The CPU-time limit in seconds (defaults to the wall limit)."""
        return self.cpu_seconds if self.cpu_seconds is not None else self.wall_seconds

    def over(self, maxima: Limits) -> tuple[str, float, float] | None:
        """The first field above ``maxima`` as (name, value, maximum), or None if none is."""
        for name in _NAMES:
            if name == "cpu_seconds":  # None means "the wall limit": compare what applies
                value, maximum = self.cpu_limit, maxima.cpu_limit
            else:
                value, maximum = getattr(self, name), getattr(maxima, name)
            if value > maximum:
                return name, value, maximum
        return None

    def replaced(self, **changes: Any) -> Limits:
        """A copy with ``changes`` applied (validated like any other)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON and event payloads (every field is a scalar: no deep copy,
        which ``dataclasses.asdict`` would spend a tenth of a millisecond on)."""
        return {name: getattr(self, name) for name in _NAMES}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        """The inverse of ``to_dict``; unknown keys are a ``BadRequest``."""
        if not isinstance(data, dict):
            raise BadRequest("limits must be an object")
        unknown = sorted(set(data) - _KNOWN)
        if unknown:
            raise BadRequest(f"unknown limit {unknown[0]!r} (known: {', '.join(sorted(_KNOWN))})")
        return cls(**data)


# The fields, read once (``dataclasses.fields`` costs microseconds a call, on every block).
_NAMES = tuple(f.name for f in fields(Limits))
_KNOWN = frozenset(_NAMES)
_CHECKS = tuple((f.name, f.type == "int", *_RANGES[f.name]) for f in fields(Limits))


def merge_requested(requested: object, *, defaults: Limits) -> Limits:
    """A request's limits: omitted fields take ``defaults``, which are also the maxima.

    ``None`` (no limits at all) and ``{}`` both give ``defaults``. A field above its
    default is a ``BadRequest`` naming the field, the value asked for and the maximum.
    """
    if requested is None:
        return defaults
    if not isinstance(requested, dict):
        raise BadRequest(f"limits must be an object, not {_show(requested)}")
    merged = Limits.from_dict({**defaults.to_dict(), **requested})
    over = merged.over(defaults)
    if over is not None:
        name, value, maximum = over
        raise BadRequest(f"limit {name}={value} is over this service's maximum of {maximum}")
    return merged


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 40, 40


def _show(value: object) -> str:
    """A short repr for error messages, safe for deeply nested or enormous values."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        return f"<a {value.bit_length()}-bit integer>"  # str() of >4300 digits raises
    return _REPR.repr(value)
