"""Typed, validated settings: the field helpers and the parser every params section uses.

A section is a frozen dataclass declared beside the code that uses it (``DataConfig`` in
``data/protocols.py``, a detector's ``Config`` in its module, ...). :func:`parse_section` walks a YAML
mapping and the dataclass together and stops at the first problem with a one-line
:class:`~oddpix.errors.ConfigError` that names the full key (``models.cae.lr``) and what would be valid:
unknown keys (with a "did you mean"), unknown choices, wrong types, values out of range, and the
section's own ``problems()``. A :func:`choice` field takes its valid names from a registry
(:class:`oddpix.registry.Registry`), so every list of names exists once.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from dataclasses import field
from typing import Any, Callable, Iterable, Literal, Mapping, Union

from .errors import ConfigError

Choices = Union[Iterable[str], Callable[[], Iterable[str]]]


def num(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
        lt: float | None = None) -> Any:
    """A numeric field with bounds checked on load."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "lt": lt})


def items(default: list, *, ge: float | None = None, gt: float | None = None, min_len: int = 0,
          choices: Choices | None = None) -> Any:
    """A list field; bounds and ``choices`` apply to each element, ``min_len`` to the list."""
    return field(default_factory=lambda: list(default),
                 metadata={"ge": ge, "gt": gt, "min_len": min_len, "choices": choices})


def choice(default: Any, choices: Choices) -> Any:
    """A name that must be one of ``choices`` (a tuple, or a callable such as a registry's ``names``)."""
    return field(default=default, metadata={"choices": choices})


def section(cls: type) -> Any:
    return field(default_factory=cls)


def did_you_mean(value: Any, names: Iterable[Any]) -> str:
    close = difflib.get_close_matches(str(value), [str(n) for n in names], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def not_a_choice(value: Any, names: Iterable[Any], what: str = "a valid choice") -> str:
    """The one wording of an unknown name: ``'zscor' is not a valid choice (did you mean 'zscore'?); ...``."""
    names = list(names)
    return f"{value!r} is not {what}{did_you_mean(value, names)}; valid choices: {', '.join(map(str, names))}"


def fail(path: str, message: str) -> typing.NoReturn:
    raise ConfigError(f"params: {path}: {message}")


def _names(choices: Choices) -> list[str]:
    return list(choices() if callable(choices) else choices)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _check_bounds(value: Any, meta: Mapping[str, Any], path: str) -> None:
    checks = (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<"))
    for key, ok, sign in checks:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            fail(path, f"{value!r} is out of range; it must be {sign} {bound}")


def _convert_union(tp: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if value is None:
        if len(args) < len(typing.get_args(tp)):
            return None
        fail(path, f"a value is required ({_type_name(tp)})")
    errors = []
    for arg in args:
        try:
            return _convert(arg, value, path, meta)
        except ConfigError as exc:
            errors.append(str(exc))
    if len(args) == 1:  # a single non-None alternative: its message is the most precise one
        raise ConfigError(errors[0])
    fail(path, f"{value!r} is not valid; expected {_type_name(tp)}")


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _convert_scalar(tp: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            fail(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(path, f"expected an integer, got {value!r}")
        _check_bounds(value, meta, path)
        return value
    if tp is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot in the mantissa) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(path, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            fail(path, f"{value!r} is not a finite number")
        _check_bounds(float(value), meta, path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail(path, f"expected a string, got {value!r}")
        if meta.get("choices") is not None and value not in (names := _names(meta["choices"])):
            fail(path, not_a_choice(value, names))
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a programming error, not user input


def _convert(tp: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, path, meta)
    if origin is Literal:
        if value not in typing.get_args(tp):
            fail(path, not_a_choice(value, typing.get_args(tp)))
        return value
    if origin is list:
        if not isinstance(value, list):
            fail(path, f"expected a list, got {value!r}")
        if len(value) < (meta.get("min_len") or 0):
            fail(path, f"needs at least {meta['min_len']} item(s)")
        inner = {k: meta.get(k) for k in ("ge", "gt", "le", "lt", "choices")}
        return [_convert(typing.get_args(tp)[0], v, f"{path}[{i}]", inner) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, value, path)
    if tp is Any or origin is dict:
        return value
    return _convert_scalar(tp, value, path, meta)


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    """The fields' types of a section (evaluating them is most of the cost of validating params)."""
    return typing.get_type_hints(cls)


def parse_section(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass ``cls`` from the mapping ``raw``; ``path`` names it in messages."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        fail(path or "params.yaml", f"expected a mapping of keys, got {raw!r}")
    hints = _type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            fail(f"{path}.{key}" if path else str(key),
                 f"unknown key{did_you_mean(key, known)}; valid keys: {', '.join(known)}")
    kwargs = {name: _convert(hints[name], raw[name], f"{path}.{name}" if path else name, f.metadata)
              for name, f in known.items() if name in raw}
    obj = cls(**kwargs)
    for key, message in getattr(obj, "problems", lambda: [])():
        fail(f"{path}.{key}" if path else key, message)
    return obj


def to_dict(obj: Any) -> Any:
    """Plain dict of a settings object (for saving next to model weights)."""
    return dataclasses.asdict(obj)
