"""Checking plain TOML values against a dataclass's type hints, for config files with one-line errors."""

from __future__ import annotations

import tomllib
import types
import typing

from lungfast.errors import LungfastError


def type_ok(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(type_ok(v, item) for v in value)
    if origin is dict:
        k, v = typing.get_args(hint)
        return isinstance(value, dict) and all(type_ok(a, k) and type_ok(b, v) for a, b in value.items())
    if hint is float:  # TOML writes 1 for 1.0; bool is an int in Python but never a number here
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def type_name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def parse_override(text: str):
    """`--set key=value`: the value is read as TOML (numbers, lists, true), else taken as a string."""
    if "=" not in text:
        raise LungfastError(f"--set {text!r}: expected key=value, e.g. --set img_size=128")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def check_fields(cls, raw: dict, source: str, where=None) -> None:
    """Unknown, missing and wrongly typed keys of `raw` for dataclass `cls`, as one line each; `where(key)` names
    the place a key's value came from (default: `source`)."""
    import dataclasses

    where = where or (lambda key: source)
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    known = [f.name for f in fields]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        shown = ", ".join(k if k.isprintable() else repr(k) for k in unknown)
        raise LungfastError(f"{source}: unknown key(s) {shown}; known keys: {', '.join(known)}")
    missing = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in raw
    ]
    if missing:
        raise LungfastError(f"{source}: missing required key(s) {', '.join(missing)}")
    for key, value in raw.items():
        if not type_ok(value, hints[key]):
            raise LungfastError(f"{where(key)}: key {key!r} must be {type_name(hints[key])}, got {value!r}")
