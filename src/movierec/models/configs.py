"""Model configs as trees of dataclasses, set by name.

A model's ``Config`` is a dataclass whose fields may themselves be dataclasses (the neural
models nest their :class:`~movierec.models.trainer.TrainConfig` as ``train``; the sequence
models also their ``push`` and ``prior`` settings). Every setting has a dotted *path*
(``train.epochs``) and a *leaf* name (``epochs``); a leaf name is accepted wherever it is
unique in the tree, so ``create("sequence", epochs=3)``, ``--set epochs=3`` and a
``config.json`` written before the nesting all keep working.

:func:`with_settings` is the one place a config changes: it checks each value against the
field's declared type (converting text from the command line), and refuses unknown names
with the names that exist. :func:`describe` lists a config's settings with their defaults
and the ``#:`` documentation written above each field.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import numbers
import re
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "Setting",
    "config_from_dict",
    "describe",
    "knows",
    "parse_assignments",
    "setting_paths",
    "with_settings",
]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One leaf setting of a config tree."""

    path: str  # dotted, e.g. "train.epochs"
    type: Any  # the resolved annotation
    default: Any
    doc: str


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


@functools.cache
def _docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines written above each field of ``cls`` (and of its bases)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines:
            text = line.strip()
            if text.startswith("#:"):
                pending.append(text[2:].strip())
                continue
            m = re.match(r"([A-Za-z_]\w*)\s*:", text)
            if m and pending:
                out[m.group(1)] = " ".join(pending)
            if not text.startswith("#"):
                pending = []
    return out


def _walk(cls: type, values: Any, prefix: str = "") -> Iterator[Setting]:
    """The leaf settings of ``cls`` with their values in the instance ``values``."""
    hints = _hints(cls)
    docs = _docs(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = f"{prefix}{f.name}"
        if _is_config(tp):
            yield from _walk(tp, getattr(values, f.name), path + ".")
        else:
            yield Setting(path, tp, getattr(values, f.name), docs.get(f.name, ""))


@functools.cache
def setting_paths(cls: type) -> tuple[Setting, ...]:
    """Every leaf setting of config class ``cls``, in declaration order (defaults from ``cls()``;
    a nested config's defaults are the ones its parent's factory gives)."""
    return tuple(_walk(cls, cls()))


@functools.cache
def _paths(cls: type) -> tuple[str, ...]:
    """Every dotted path of ``cls``: its leaf settings, then its nested configs."""
    nested = [p for s in setting_paths(cls) for p in _prefixes(s.path)]
    return tuple(s.path for s in setting_paths(cls)) + tuple(dict.fromkeys(nested))


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _resolve(cls: type, key: str) -> str:
    """The dotted path of ``key`` (a path, or a leaf name unique in the tree; a path is taken as
    it is, so a top-level field wins over a nested leaf of the same name)."""
    paths = _paths(cls)
    if key in paths:
        return key
    found = [p for p in paths if p.rsplit(".", 1)[-1] == key]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{cls.__name__}: {key!r} is ambiguous, say which: {', '.join(found)}")
    close = [p for p in paths if key in p or p.rsplit(".", 1)[-1] in key]
    hint = f"; did you mean {', '.join(close[:4])}?" if close else ""
    raise ValueError(
        f"{cls.__name__} has no setting {key!r}{hint} (`movierec train --model NAME --help-config` lists them)"
    )


def knows(cls: type, key: str) -> bool:
    """Whether config class ``cls`` has the setting ``key`` (a path or a unique leaf name)."""
    if not _is_config(cls):
        return False
    try:
        _resolve(cls, key)
    except ValueError:
        return False
    return True


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """``value`` as type ``tp`` (text from a command line is parsed); a clear error otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{path}: cannot take {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in re.split(r"[,\s]+", value.strip("()[] ")) if v]
        if not isinstance(value, list | tuple):
            raise ValueError(f"{path} takes a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(v, item, path) for v in value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ValueError(f"{path} takes true or false, got {value!r}")
    if tp in (int, float):
        return _number(value, tp, path)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{path} takes text, got {value!r}")
    if tp is dict or typing.get_origin(tp) is dict:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} takes a JSON object, got {value!r}") from exc
        if not isinstance(value, dict):
            raise ValueError(f"{path} takes a mapping, got {value!r}")
        return value
    return value


def _number(value: Any, tp: type, path: str) -> Any:
    """``value`` as an int or a float (text parsed; a bool is neither; a whole float is an int)."""
    what = "an integer" if tp is int else "a number"
    if isinstance(value, str):
        try:
            value = tp(value)
        except ValueError:
            raise ValueError(f"{path} takes {what}, got {value!r}") from None
    # numpy scalars count (a grid search hands them over); a bool (Python's or numpy's) does not
    if type(value).__name__ in ("bool", "bool_") or not isinstance(value, numbers.Real):
        raise ValueError(f"{path} takes {what}, got {value!r}")
    if tp is int and not float(value).is_integer():
        raise ValueError(f"{path} takes {what}, got {value!r}")
    return tp(value)


def _set(config: Any, path: list[str], value: Any, full: str) -> Any:
    head = path[0]
    if len(path) > 1:
        return dataclasses.replace(config, **{head: _set(getattr(config, head), path[1:], value, full)})
    cls: type = type(config)
    tp = _hints(cls)[head]
    if _is_config(tp):
        if isinstance(value, tp):
            return dataclasses.replace(config, **{head: value})
        if not isinstance(value, Mapping):
            raise ValueError(f"{full} takes a mapping of its settings, got {value!r}")
        return dataclasses.replace(config, **{head: with_settings(getattr(config, head), value, prefix=full)})
    return dataclasses.replace(config, **{head: _coerce(value, tp, full)})


def with_settings(config: Any, settings: Mapping[str, Any], *, prefix: str = "") -> Any:
    """A copy of dataclass ``config`` with ``settings`` applied (keys: dotted paths, unique leaf
    names, or a nested config's name with a mapping or an instance); values are checked against
    the declared types. ``config`` itself is not changed."""
    cls = type(config)
    for key, value in settings.items():
        try:
            path = _resolve(cls, key)
        except ValueError as exc:
            raise ValueError(f"{prefix}: {exc}" if prefix else str(exc)) from None
        config = _set(config, path.split("."), value, f"{prefix}.{path}" if prefix else path)
    return config


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """``cls`` built from a saved ``config.json`` (nested, or flat as written before the nesting);
    names listed in ``cls.retired`` (settings that were removed) are skipped."""
    retired: frozenset[str] = getattr(cls, "retired", frozenset())
    return with_settings(cls(), {k: v for k, v in data.items() if k not in retired})


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["epochs=8", "train.lr=1e-3"]`` -> ``{"epochs": "8", "train.lr": "1e-3"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"a setting is NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def describe(cls: type, defaults: Any | None = None) -> str:
    """A text listing of ``cls``'s settings: path, type, default (read from ``defaults``, an
    instance, when given: a model class may start from other values than ``cls()``) and
    documentation."""
    rows = []
    for s in setting_paths(cls) if defaults is None else _walk(cls, defaults):
        value = s.default
        default = json.dumps(value) if isinstance(value, str | bool) else repr(value)
        rows.append(
            f"{s.path} ({_type_name(s.type)}, default {default})" + (f"\n    {s.doc}" if s.doc else "")
        )
    return "\n".join(rows)
