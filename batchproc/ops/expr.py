"""Mask expressions such as ``(x > 32) & ~(x > 64)``: parsed with Python's ``ast``
and evaluated by walking a whitelist of node types. Never ``eval``.

Allowed: the name ``x`` (the image), numbers, ``True``/``False``, parentheses,
``+ - * / // % **``, ``& | ^ ~``, comparisons (chained ones such as
``32 < x <= 64`` mean ``(32 < x) & (x <= 64)``), and unary ``-``/``+``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Invert: operator.invert,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}

Expression = Callable[[np.ndarray], np.ndarray]


def compile_expression(text: Any, *, where: str, name: str = "expr") -> Expression:
    """Parse ``text`` and return a function of the image ``x``.

    Raises :class:`BatchprocError` naming ``where``/``name`` and the offending
    construct for anything outside the whitelist.
    """
    if not isinstance(text, str) or not text.strip():
        raise BatchprocError(f"{where}: parameter '{name}' must be an expression over x such as '(x > 32) & ~(x > 64)'; got {text!r}.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise BatchprocError(f"{where}: parameter '{name}' is not a valid expression ({err.msg}): {text!r}.") from None

    def refuse(node: ast.AST, what: str) -> BatchprocError:
        snippet = ast.get_source_segment(text.strip(), node) or type(node).__name__
        return BatchprocError(
            f"{where}: parameter '{name}' may only use x, numbers, comparisons and the operators "
            f"+ - * / // % ** & | ^ ~; {what} {snippet!r} is not allowed in {text!r}."
        )

    def build(node: ast.AST) -> Callable[[np.ndarray], Any]:
        if isinstance(node, ast.Expression):
            return build(node.body)
        if isinstance(node, ast.Name):
            if node.id != "x":
                raise refuse(node, "the name")
            return lambda x: x
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool | int | float):
                return lambda x: value
            raise refuse(node, "the constant")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            fn, left, right = _BINARY[type(node.op)], build(node.left), build(node.right)
            return lambda x: fn(left(x), right(x))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            fn1, operand = _UNARY[type(node.op)], build(node.operand)
            return lambda x: fn1(operand(x))
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            terms = [build(t) for t in (node.left, *node.comparators)]
            fns = [_COMPARE[type(op)] for op in node.ops]

            def compare(x: np.ndarray) -> Any:
                values = [t(x) for t in terms]
                parts = [f(a, b) for f, a, b in zip(fns, values, values[1:], strict=False)]
                return reduce(operator.and_, parts)

            return compare
        if isinstance(node, ast.BoolOp):
            raise refuse(node, "'and'/'or' (use & and | with parentheses):")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            raise refuse(node, "'not' (use ~):")
        if isinstance(node, ast.Call):
            raise refuse(node, "the call")
        if isinstance(node, ast.Attribute):
            raise refuse(node, "the attribute")
        if isinstance(node, ast.Subscript):
            raise refuse(node, "the subscript")
        raise refuse(node, "the construct")

    fn = build(tree)

    def evaluate(x: np.ndarray) -> np.ndarray:
        return np.asarray(fn(x))

    evaluate.__name__ = "expression"
    evaluate.__doc__ = text
    return evaluate


def result_dtype(fn: Expression, dtype: np.dtype) -> np.dtype:
    """The dtype ``fn`` gives for an input of ``dtype`` (numpy's own promotion rules),
    found on a one-element array so that nothing is computed."""
    with np.errstate(all="ignore"):
        return np.asarray(fn(np.ones(1, dtype=dtype))).dtype
