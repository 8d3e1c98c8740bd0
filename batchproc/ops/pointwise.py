"""Voxel-by-voxel operations from the course: thresholds, mask expressions,
``where`` and ``astype`` (with optional rescaling)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from batchproc.kernels.filters import threshold_mask
from batchproc.ops import _checks as c
from batchproc.ops._registry import Operation, Param, Pass, register
from batchproc.ops.expr import compile_expression, result_dtype
from batchproc.ops.measure import block_range


def bool_dtype(dtype: np.dtype, params: Mapping[str, Any]) -> np.dtype:
    return np.dtype(bool)


# ---------------------------------------------------------------- threshold


def threshold_block(x: np.ndarray, *, above: Any, below: Any) -> np.ndarray:
    return threshold_mask(x, above, below)


def _relate_threshold(params: dict[str, Any], ctx: c.Context) -> None:
    if params["above"] is None and params["below"] is None:
        raise ctx.fail("above", "given (or below)", None)


register(
    Operation(
        name="threshold",
        summary_text="A boolean mask: x > above, x < below, or both (strict, like im > 64).",
        params=(
            Param("above", c.optional(c.real()), None, "keep voxels strictly above this value"),
            Param("below", c.optional(c.real()), None, "keep voxels strictly below this value"),
        ),
        kind="pointwise",
        block=threshold_block,
        dtype=bool_dtype,
        relate=_relate_threshold,
    )
)


# ---------------------------------------------------------------- expression


def _expression_check(name: str, value: Any, ctx: c.Context) -> Any:
    compile_expression(value, where=ctx.where, name=name)
    return value


def expression_block(x: np.ndarray, *, expr: str) -> np.ndarray:
    return compile_expression(expr, where="expression")(x)


register(
    Operation(
        name="expression",
        summary_text="Evaluate an expression over x, e.g. '(x > 32) & ~(x > 64)' (a whitelist; never eval).",
        doc_text=__import__("batchproc.ops.expr", fromlist=["x"]).__doc__ or "",
        params=(Param("expr", c.described(_expression_check, {"type": "string"}), help="expression over x, e.g. '(x > 32) & ~(x > 64)'"),),
        kind="pointwise",
        block=expression_block,
        dtype=lambda dtype, params: result_dtype(compile_expression(params["expr"], where="expression"), dtype),
    )
)


# ---------------------------------------------------------------- where


def _fill_dtype(dtype: np.dtype, params: Mapping[str, Any]) -> np.dtype:
    return np.where(np.zeros(1, bool), np.zeros(1, dtype), params["fill"]).dtype


def where_block(x: np.ndarray, *condition: np.ndarray, **params: Any) -> np.ndarray:
    if condition:
        mask = condition[0]
    else:
        mask = compile_expression(params["condition"], where="where", name="condition")(x)
    return np.where(mask, x, params["fill"])


def _where_check_condition(params: dict[str, Any], ctx: c.Context) -> None:
    cond = params["condition"]
    if isinstance(cond, str):
        compile_expression(cond, where=ctx.where, name="condition")
    elif not hasattr(cond, "shape"):
        raise ctx.fail("condition", "an expression over x such as 'x > 64', or a boolean array", cond)
    elif np.dtype(cond.dtype) != bool:
        raise ctx.fail("condition", "a boolean array (a mask)", f"an array of dtype {cond.dtype}")


register(
    Operation(
        name="where",
        summary_text="Keep x where the condition holds, fill elsewhere: np.where(condition, x, fill).",
        params=(
            Param("condition", c.described(c.anything(), {"type": "string"}), help="expression over x ('x > 64') or a boolean mask array", array=True),
            Param("fill", c.real(), 0, "value where the condition is false"),
        ),
        kind="pointwise",
        block=where_block,
        dtype=_fill_dtype,
        relate=_where_check_condition,
    )
)


# ---------------------------------------------------------------- astype


def _target_range(dtype: np.dtype) -> tuple[float, float]:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


def rescale_block(x: np.ndarray, lo: Any, hi: Any, *, dtype: np.dtype) -> np.ndarray:
    """Map [lo, hi] linearly onto the dtype's range (integers: rounded and clipped;
    floats: [0, 1]), in float64."""
    out_lo, out_hi = _target_range(dtype)
    lo, hi = float(lo), float(hi)
    scale = (out_hi - out_lo) / (hi - lo) if hi > lo else 0.0
    y = (x.astype(np.float64) - lo) * scale + out_lo
    if dtype.kind in "iu":
        y = np.clip(np.rint(y), out_lo, out_hi)
    return y.astype(dtype)


def astype_passes(dtype: np.dtype, params: Mapping[str, Any], kernels: str = "scipy") -> tuple[Pass, ...]:
    """With ``rescale`` and no ``in_range``: a pass for the data's min and max."""
    return (Pass(block_range, (2,), "range"),) if params["rescale"] and params["in_range"] is None else ()


def astype_finish(dtype: np.dtype, params: Mapping[str, Any]) -> Callable[..., np.ndarray]:
    """``x.astype(dtype)``; with ``rescale``, [in_range] (default: the data's min and
    max, a global pass) is mapped linearly onto the target range."""
    target = np.dtype(params["dtype"])
    if not params["rescale"]:
        return lambda b: b.astype(target)
    given = params["in_range"]

    def block(b: np.ndarray, *results: np.ndarray) -> np.ndarray:
        lo, hi = given if given is not None else results[0]
        return rescale_block(b, lo, hi, dtype=target)

    return block


def _check_range(name: str, value: Any, ctx: c.Context) -> Any:
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not value[0] < value[1]
    ):
        raise ctx.fail(name, "a pair [low, high] of numbers with low < high", value)
    return (value[0], value[1])


def _relate_astype(params: dict[str, Any], ctx: c.Context) -> None:
    if params["rescale"] and params["dtype"].kind == "b":
        raise ctx.fail("dtype", "an integer or float dtype when rescale is true", str(params["dtype"]))


register(
    Operation(
        name="astype",
        summary_text="Convert to another dtype, optionally rescaling the intensity range onto the new dtype's range.",
        doc_text=inspect.cleandoc(astype_finish.__doc__ or ""),
        params=(
            Param("dtype", c.dtype_(allow_none=False), help="target dtype, e.g. uint8 or float32"),
            Param("rescale", c.boolean(), False, "map the intensity range onto the dtype's range ([0, 1] for floats)"),
            Param(
                "in_range",
                c.described(_check_range, {"anyOf": [{"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}, {"type": "null"}]}),
                None,
                "input range [low, high] to map (default: the data's min and max)",
            ),
        ),
        kind="global",
        passes=astype_passes,
        finish=astype_finish,
        dtype=lambda dtype, params: np.dtype(params["dtype"]),
        relate=_relate_astype,
    )
)
