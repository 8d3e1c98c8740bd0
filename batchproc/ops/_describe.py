"""Parameters in words, from their declarations: the JSON Schema a check
describes itself with, as a type and the values it accepts. The operations
reference (docs/hooks.py) and the generated docstrings read the same words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def describe_schema(schema: Mapping[str, Any]) -> tuple[str, str]:
    """A parameter's JSON Schema as (type, accepted values) in words."""
    if "anyOf" in schema:
        kinds, values = zip(*(describe_schema(s) for s in schema["anyOf"]), strict=True)
        return " or ".join(_unique(kinds)), "; ".join(v for v in _unique(values) if v)
    if "enum" in schema:
        return "string", ", ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return "constant", f"`{schema['const']}`"
    kind = schema.get("type")
    if kind == "array":
        item_kind, item_values = describe_schema(schema.get("items", {})) if schema.get("items") else ("value", "")
        count = ""
        low, high = schema.get("minItems"), schema.get("maxItems")
        if low is not None and low == high:
            count = f"{low} "
        text = f"list of {count}{_plural(item_kind)}"
        if schema.get("uniqueItems"):
            text += " (distinct)"
        return text, item_values
    bounds = []
    if "minimum" in schema:
        bounds.append(f"≥ {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        bounds.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        bounds.append(f"≤ {schema['maximum']}")
    names = {"integer": "integer", "number": "number", "boolean": "boolean", "string": "string", "null": "null"}
    return names.get(kind, "any" if kind is None else str(kind)), ", ".join(bounds)


def _plural(kind: str) -> str:
    return " or ".join(k if k.endswith("s") or k.startswith("list") else k + "s" for k in kind.split(" or "))


def _unique(items: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# ---------------------------------------------------------------- command line


def param_words(param: Any) -> tuple[str, str, str]:
    """A declared parameter as (type, accepted values, help) in words."""
    from batchproc.ops._checks import schema_of

    if param.array:
        return "array aligned with the input", "Python only", param.help
    schema = {**schema_of(param.check), **param.json_schema}
    kind, values = describe_schema(schema)
    note = schema.get("description")
    return kind, values, param.help + (f" ({note})" if note else "")


def numpydoc(op: Any) -> str:
    """The docstring of ``op``'s function, in numpydoc form: scipy's own for scipy's
    names; otherwise the summary and the declaration's text, with Parameters and
    Returns sections made from the declaration unless its text has them."""
    if op.scipy and op.doc:
        return op.doc
    text = op.doc.strip()
    lines = [op.summary, ""]
    if text and text != op.summary.strip():
        lines += [text, ""]
    if "Parameters\n----------" not in text:
        lines += ["Parameters", "----------", "input : dask.array.Array or numpy.ndarray", "    The image (a numpy array is wrapped in one dask block)."]
        for param in op.params:
            kind, values, help_text = param_words(param)
            default = "" if param.required else f", default {param.default!r}"
            lines += [f"{param.name} : {kind}{default}", f"    {help_text[:1].upper() + help_text[1:]}." + (f" Accepted: {values}." if values else "")]
        lines.append("")
    if "Returns\n-------" not in text:
        if op.returns_array:
            lines += ["Returns", "-------", "dask.array.Array", "    Lazy, in the input's chunks: nothing computes until it is written or computed."]
        else:
            lines += ["Returns", "-------", "numpy.ndarray or tuple", "    Computed at once, as scipy returns it."]
    return "\n".join(lines).rstrip() + "\n"
