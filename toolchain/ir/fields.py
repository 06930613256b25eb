"""A node's parameters, derived from its dataclass: what the file formats write and read and what
`describe` shows, so that a new field of a node needs no new line in any of them.

Each field has a kind, from its type: "float", "int", "bool", "tuple" (a shape, a stride) or
"array" (a numpy array, stored as a tensor); "other" for anything else. A "float" or "int"
field whose type also allows an array (a population's per-neuron parameters) may hold one:
formats store it as a tensor, as they do an array. A field whose value is its default (None
included) is not set, and formats leave it out.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

import numpy as np


@functools.cache
def kinds(node_type: type) -> dict[str, str]:
    """Field name -> kind, in declaration order, the node's name left out."""
    hints = typing.get_type_hints(node_type)
    found = {}
    for field in dataclasses.fields(node_type):
        if field.name == "name":
            continue
        hint = hints[field.name]
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        options = {typing.get_origin(o) or o for o in (typing.get_args(hint) if union else (hint,))}
        options.discard(type(None))
        found[field.name] = next(
            (kind for kind, t in KINDS if any(option is t for option in options)), "other"
        )
    return found


# the first that a field's type allows: a tuple (shape, stride) before the int it may also be,
# a number before the per-neuron array it may also be
KINDS = (("tuple", tuple), ("bool", bool), ("int", int), ("float", float), ("array", np.ndarray))


def required(node_type: type) -> tuple[str, ...]:
    """The fields without a default: every node of the type states them."""
    return tuple(
        f.name
        for f in dataclasses.fields(node_type)
        if f.name != "name"
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )


def set_fields(node: Any, *, shown: bool = False) -> list[tuple[str, str, Any]]:
    """(name, kind, value) of every field of `node` that is not at its default; with `shown`,
    also those marked to be shown whatever their value (metadata `shown`, e.g. input levels)."""
    found = []
    for field in dataclasses.fields(node):
        if field.name == "name":
            continue
        value, default = getattr(node, field.name), field.default
        kind = kinds(type(node))[field.name]
        unset = value is None or (
            not isinstance(value, np.ndarray)
            and default is not dataclasses.MISSING
            and value == default
        )
        if not unset or (shown and field.metadata.get("shown") and value is not None):
            found.append((field.name, kind, value))
    return found


def described_field(node: Any, name: str) -> bool:
    """Whether the field says in words what it means (its `says` metadata)."""
    field = next(f for f in dataclasses.fields(node) if f.name == name)
    return "says" in field.metadata


def says(node: Any, name: str) -> str:
    """What a set field means, in words (the field's `says` metadata, with its value), for
    refusals; the field's name and value where it has none."""
    field = next(f for f in dataclasses.fields(node) if f.name == name)
    value = getattr(node, name)
    text = field.metadata.get("says")
    return text.format(value) if text else f"has {name} = {value}"


def shown_value(value: Any) -> str:
    """A parameter in a message: the number, or the range of a per-neuron array."""
    if isinstance(value, np.ndarray):
        return f"[{value.min():.6g} .. {value.max():.6g}] (per neuron)"
    return f"{value}"
