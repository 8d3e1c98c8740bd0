"""Hypothesis strategies generated from the registry's declarations: each
parameter's values drawn from the JSON Schema its check describes (types, ranges,
enums, per-axis lists), so a new operation's parameters are explored as soon as
it is declared, with no strategy written for it."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from batchproc.ops import REGISTRY
from batchproc.ops._checks import schema_of
from batchproc.ops._registry import Operation, Param

#: The schema's spellings of the floats JSON cannot hold, as Python's.
SPECIAL_FLOATS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def from_schema(schema: dict[str, Any], ndim: int) -> st.SearchStrategy[Any] | None:
    """Values the schema admits (numbers kept small: these run on arrays of a few
    voxels a side), or None where the schema says too little to draw from."""
    if "anyOf" in schema:
        options = [from_schema(s, ndim) for s in schema["anyOf"]]
        options = [o for o in options if o is not None]
        return st.one_of(options) if options else None
    if "enum" in schema:
        return st.sampled_from([SPECIAL_FLOATS.get(v, v) if isinstance(v, str) else v for v in schema["enum"]])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low = int(schema.get("minimum", -3))
        return st.integers(low, int(schema.get("maximum", max(low, 0) + 5)))
    if kind == "number":
        low = float(schema.get("minimum", schema.get("exclusiveMinimum", -5.0)))
        high = float(schema.get("maximum", max(low, 0.0) + 5.0))
        numbers = st.floats(low, high, allow_nan=False, exclude_min="exclusiveMinimum" in schema).map(lambda v: round(v, 2))
        return numbers.filter(lambda v: "exclusiveMinimum" not in schema or v > schema["exclusiveMinimum"])
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict) or "anyOf" in items and any(s.get("type") == "array" for s in items["anyOf"]):
            return None  # nested arrays (structures, weights): the hand-written cases draw those
        element = from_schema(items, ndim)
        if element is None:
            return None
        low = int(schema.get("minItems", 0))
        # mostly one per axis, sometimes another length (which scipy refuses)
        sizes = st.one_of(st.just(ndim), st.just(ndim), st.integers(max(low, 1), ndim + 1))
        unique = bool(schema.get("uniqueItems"))
        return sizes.flatmap(lambda n: st.lists(element, min_size=max(n, low), max_size=max(n, low), unique=unique).map(tuple))
    return None


def drawable(param: Param) -> bool:
    """Whether the declaration says enough to draw the parameter's values."""
    return not param.array and from_schema(schema_of(param.check), 1) is not None


def declared_ops() -> list[str]:
    """The scipy operations returning arrays whose required parameters can all be drawn."""
    return sorted(name for name, op in REGISTRY.items() if op.scipy and op.returns_array and all(drawable(p) for p in op.params if p.required))


@st.composite
def declared_params(draw: st.DrawFn, op: Operation, ndim: int) -> dict[str, Any]:
    """Parameters for ``op`` on an array of ``ndim`` dimensions: the required ones,
    and each optional one half of the time, drawn from its declaration."""
    params: dict[str, Any] = {}
    for p in op.params:
        if p.array or (not p.required and not draw(st.booleans())):
            continue
        # axes within the array (out of range, scipy's own classes differ by function
        # and by which check it reaches first: test_validation.py covers those)
        strategy = valid_axes(ndim) if p.name == "axes" else from_schema(schema_of(p.check), ndim)
        if strategy is not None:
            params[p.name] = draw(strategy, label=p.name)
    return params


def valid_axes(ndim: int) -> st.SearchStrategy[Any]:
    """None, or a tuple of distinct axes, each maybe counted from the end (a bare
    int: scipy 1.17's rank filters refuse it for a footprint it builds itself, a
    bug the hand-written cases step around)."""
    some = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
    signed = some.flatmap(lambda axes: st.tuples(*(st.sampled_from([a, a - ndim]) for a in axes)))
    return st.one_of(st.none(), signed.map(lambda t: tuple(sorted(t, key=lambda a: a % ndim))))
