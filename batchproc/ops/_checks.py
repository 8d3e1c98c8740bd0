"""Parameter checkers: each turns a user's value into the normalized value or raises.

A checker is ``check(value, ctx) -> value``. It validates one parameter on its own
(type, range); relations between parameters are checked by the operation's
``relate`` hook. Every message names the parameter, the expected form and the value.
Values stay in the form scipy accepts, so a block kernel can pass them straight on.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError, refusal

#: scipy.ndimage's boundary modes for filters (the grid-* names are its aliases).
MODES = (
    "reflect",
    "constant",
    "nearest",
    "mirror",
    "wrap",
    "grid-wrap",
    "grid-constant",
    "grid-mirror",
)
WRAP_MODES = frozenset({"wrap", "grid-wrap"})


@dataclass(frozen=True)
class Context:
    """Where a value is being checked: the operation (and pipeline step) and the input.

    ``ndim``/``dtype`` are ``None`` when a pipeline file is checked before its input
    is opened; checks that need them run again when the step is applied.
    """

    op: str
    ndim: int | None = None
    dtype: np.dtype | None = None
    step: int | None = None
    size: int | None = None  # voxels in the input, where known (label's output dtype depends on it, as scipy's)
    kernels: str | None = None  # the kernel set a planned run will use, where known

    @property
    def where(self) -> str:
        if self.step is None:
            return self.op
        return f"step {self.step} ({self.op})"

    def fail(self, name: str, expected: str, value: Any, like: type[BaseException] | None = None) -> BatchprocError:
        """The error for parameter ``name``; ``like``: the class scipy raises for it."""
        shown = _show(value)
        return refusal(f"{self.where}: parameter '{name}' must be {expected}; got {shown}.", like)


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


Check = Callable[[str, Any, Context], Any]


def described(check: Check, schema: dict[str, Any]) -> Check:
    """``check``, saying what it accepts as a JSON Schema fragment (``ops --schema``)."""
    check.schema = schema  # type: ignore[attr-defined]
    return check


def schema_of(check: Check) -> dict[str, Any]:
    """What ``check`` accepts, as JSON Schema (empty where it cannot say)."""
    return dict(getattr(check, "schema", {}))


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def integer(lo: int | None = None, hi: int | None = None, *, allow_bool: bool = False) -> Check:
    def check(name: str, v: Any, ctx: Context) -> Any:
        ok = _is_int(v) or (allow_bool and isinstance(v, bool | np.bool_))
        if not ok or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ctx.fail(name, _range_text("an integer", lo, hi), v)
        return int(v)

    return described(check, {"type": "integer", **({"minimum": lo} if lo is not None else {}), **({"maximum": hi} if hi is not None else {})})


def real(lo: float | None = None, *, lo_open: bool = False, hi: float | None = None, any_float: bool = False) -> Check:
    """A real number within the bounds: finite, or with ``any_float`` any float
    (inf and NaN too, as scipy takes them)."""

    def check(name: str, v: Any, ctx: Context) -> Any:
        if not _is_real(v) or (not any_float and not np.isfinite(v)):
            raise ctx.fail(name, "a number" if any_float else "a finite number", v)
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise ctx.fail(name, f"a number {'>' if lo_open else '>='} {lo}", v)
        if hi is not None and v > hi:
            raise ctx.fail(name, f"a number <= {hi}", v)
        return float(v) if not _is_int(v) else v

    bounds = {("exclusiveMinimum" if lo_open else "minimum"): lo} if lo is not None else {}
    if hi is not None:
        bounds["maximum"] = hi
    # Infinite and NaN values are written "Infinity", "-Infinity", "NaN" where JSON has no number for them.
    kind = {"anyOf": [{"type": "number"}, {"enum": ["Infinity", "-Infinity", "NaN"]}]} if any_float else {"type": "number"}
    return described(check, {**kind, **bounds})


def _range_text(kind: str, lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{kind} from {lo} to {hi}"
    if lo is not None:
        return f"{kind} >= {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def boolean() -> Check:
    def check(name: str, v: Any, ctx: Context) -> Any:
        if not isinstance(v, bool | np.bool_):
            raise ctx.fail(name, "true or false", v)
        return bool(v)

    return described(check, {"type": "boolean"})


def optional(inner: Check) -> Check:
    def check(name: str, v: Any, ctx: Context) -> Any:
        return None if v is None else inner(name, v, ctx)

    return described(check, {"anyOf": [schema_of(inner), {"type": "null"}]})


def per_axis(inner: Check, what: str) -> Check:
    """A scalar, or one value per axis (a list or tuple); the length is checked in
    ``relate`` once the number of axes is known."""

    def check(name: str, v: Any, ctx: Context) -> Any:
        if isinstance(v, np.ndarray) and v.ndim == 1:
            v = v.tolist()
        if isinstance(v, Sequence) and not isinstance(v, str):
            if len(v) == 0:
                raise ctx.fail(name, f"{what}, or a list of one per axis", v)
            return tuple(inner(name, item, ctx) for item in v)
        try:
            return inner(name, v, ctx)
        except BatchprocError:
            raise ctx.fail(name, f"{what}, or a list of one per axis", v) from None

    one = schema_of(inner)
    return described(check, {"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]})


def mode(per_axis_allowed: bool) -> Check:
    def one(name: str, v: Any, ctx: Context) -> str:
        if not isinstance(v, str) or v not in MODES:
            # scipy: "A sequence of modes is not supported ..." is a RuntimeError
            sequence = isinstance(v, Sequence) and not isinstance(v, str) and not per_axis_allowed
            raise ctx.fail(
                name,
                "one of " + ", ".join(MODES) + (" (one mode: this filter takes no list of modes)" if sequence else ""),
                v,
                RuntimeError if sequence else None,
            )
        return v

    described(one, {"enum": list(MODES)})
    if per_axis_allowed:
        return per_axis(one, "one of " + ", ".join(MODES))
    return one


def axes() -> Check:
    def check(name: str, v: Any, ctx: Context) -> Any:
        if v is None:
            return None
        if isinstance(v, np.ndarray):  # scipy takes axes as a numpy array too
            v = v.tolist() if v.ndim == 1 else (v.item() if v.ndim == 0 else v)
        items = (v,) if not isinstance(v, Sequence) or isinstance(v, str) else tuple(v)
        if not items or not all(_is_int(a) for a in items):
            raise ctx.fail(name, "an axis number or a list of distinct axis numbers", v)
        if ctx.ndim is not None:
            if any(not -ctx.ndim <= a < ctx.ndim for a in items):
                raise ctx.fail(name, f"axes of a {ctx.ndim}-D input (from {-ctx.ndim} to {ctx.ndim - 1})", v)
            if len({a % ctx.ndim for a in items}) != len(items):
                raise ctx.fail(name, "distinct axes", v)
        return tuple(int(a) for a in items) if isinstance(v, Sequence) else int(v)

    return described(
        check, {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 1, "uniqueItems": True}, {"type": "null"}]}
    )


def dtype_(*, allow_none: bool = True, numeric: bool = False) -> Check:
    """A dtype; ``numeric``: not bool (scipy's filters refuse a boolean output with
    a RuntimeError, 'output must have numeric dtype')."""

    def check(name: str, v: Any, ctx: Context) -> Any:
        if v is None and allow_none:
            return None
        if isinstance(v, np.ndarray):
            raise ctx.fail(name, "a dtype (output arrays cannot be given for lazy arrays)", v)
        try:
            dt = np.dtype(v)
        except TypeError:
            raise ctx.fail(name, "a numpy dtype name such as 'uint8' or 'float32'", v) from None
        if dt.kind not in "biuf":
            raise ctx.fail(name, "a boolean, integer or floating dtype", v)
        if numeric and dt.kind == "b":
            raise ctx.fail(name, "a numeric dtype (scipy: 'output must have numeric dtype')", v, RuntimeError)
        return dt

    names = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float16", "float32", "float64"][int(numeric) :]
    return described(check, {"anyOf": [{"enum": names}, {"type": "null"}]} if allow_none else {"enum": names})


def array(*, kind: str, what: str) -> Check:
    """A small in-memory array given inline (weights, footprint, structure).

    ``kind`` is ``'bool'`` (values must be 0/1 or booleans) or ``'number'``.
    Nested lists from a pipeline file are accepted.
    """

    def check(name: str, v: Any, ctx: Context) -> Any:
        if v is None:
            return None
        if hasattr(v, "dask"):
            raise ctx.fail(name, f"{what} as an in-memory array, not a dask array", "a dask array")
        try:
            arr = np.asarray(v)
        except ValueError:
            raise ctx.fail(name, f"{what} (a rectangular nested list)", v) from None
        if arr.dtype == object or arr.ndim == 0 or arr.size == 0:
            raise ctx.fail(name, f"{what} (a rectangular nested list)", v)
        if kind == "bool":
            if arr.dtype != bool:
                if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
                    raise ctx.fail(name, f"{what} of booleans (true/false or 0/1)", v)
                arr = arr.astype(bool)
        elif arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
            raise ctx.fail(name, f"{what} of finite numbers", v)
        return arr

    element: dict[str, Any] = {"type": "boolean"} if kind == "bool" else {"type": "number"}
    # A rectangular nested list of booleans (or 0/1) or numbers, one level per dimension.
    return described(
        check,
        {
            "anyOf": [{"type": "array", "minItems": 1, "items": {"anyOf": [element, {"type": "array"}]}}, {"type": "null"}],
            "description": f"{what}: a nested list of {'booleans' if kind == 'bool' else 'numbers'}",
        },
    )


def choice(options: Sequence[str]) -> Check:
    def check(name: str, v: Any, ctx: Context) -> Any:
        if v not in options:
            raise ctx.fail(name, "one of " + ", ".join(map(str, options)), v)
        return v

    return described(check, {"enum": list(options)})


def anything() -> Check:
    def check(name: str, v: Any, ctx: Context) -> Any:
        return v

    return check


def check_length(name: str, value: Any, n: int, ctx: Context, what: str = "axis") -> None:
    """A per-axis sequence of the wrong length: scipy's RuntimeError ('sequence
    argument must have length equal to input rank')."""
    if isinstance(value, tuple) and len(value) != n:
        raise ctx.fail(name, f"a single value or a list of {n} (one per {what})", list(value), RuntimeError)
