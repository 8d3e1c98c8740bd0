"""The operation registry: each operation is declared once, here, and everything
else (``batchproc.ndimage``, pipeline files, the CLI, ``batchproc ops``) is derived
from the declaration.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, Literal

import numpy as np

from batchproc.errors import BatchprocError, refusal
from batchproc.kernels.params import axes_tuple, expand
from batchproc.ops._checks import WRAP_MODES, Check, Context

REQUIRED: Any = inspect.Parameter.empty

Kind = Literal["local", "pointwise", "global"]
Edge = Literal["none", "periodic", "whole"]
"""How an operation runs on a chunked array.

- ``local``: each output voxel depends on a bounded neighbourhood (the halo); runs
  block by block with overlap, and fuses with its neighbours in a pipeline.
- ``pointwise``: a local operation with no halo.
- ``global``: needs passes over the whole array first (histogram, equalize): each
  pass reduces every block to a small array (:class:`Pass`), and once the passes
  are done the operation runs voxel by voxel (``finish``).
"""


@dataclass(frozen=True)
class Param:
    """One parameter: its name, checker, default and help.

    ``positional``: in scipy's signature before the ``*`` (can be passed by position).
    ``array``: a lazy array aligned with the input (``mask``, ``labels``): it is
    chunked like the input and gets the same halo. Only the Python API can give one.
    """

    name: str
    check: Check
    default: Any = REQUIRED
    help: str = ""
    positional: bool = True
    array: bool = False
    json_schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


BlockFn = Callable[..., np.ndarray]
Combine = Literal["sum", "range", "collect"]
#: How the blocks' partial results of a :class:`Pass` become one: ``sum`` adds them;
#: ``range`` takes ``[min, max]`` pairs to the smallest min and the largest max;
#: ``collect`` hands all of them to the pass's ``reduce``.
COMBINES: tuple[Combine, ...] = ("sum", "range", "collect")


@dataclass(frozen=True)
class Pass:
    """One reduction over the whole array that a global operation needs before it
    can run block by block.

    ``partial(block, *earlier)`` reduces one block (its exact part, never a halo) to
    an array of ``shape``, given the results of the passes before this one; the
    blocks' partials are combined by ``combine``. A count does not depend on how the array
    is chunked, so the combined result equals one computed on the whole array.

    ``located``: the partial also gets ``where=`` (the block's box, per axis ``(start,
    stop)``) and ``shape=`` (the whole array's). ``collect``: every block's partial
    (any object) goes to ``reduce(partials, shape)``, whose result is the pass's.
    """

    partial: Callable[..., Any]
    shape: tuple[int, ...]
    combine: Combine = "sum"
    located: bool = False
    reduce: Callable[[list[Any], tuple[int, ...]], Any] | None = None


def combine(kind: Combine, parts: list[np.ndarray]) -> np.ndarray:
    """The partials of a :class:`Pass` combined into its result."""
    if kind == "sum":
        total = np.array(parts[0], copy=True)
        for part in parts[1:]:
            total += part
        return total
    stacked = np.stack(parts)
    return np.stack([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)])


HaloFn = Callable[[Mapping[str, Any], int], tuple[int, ...]]
DtypeFn = Callable[[np.dtype, Mapping[str, Any]], np.dtype]
RelateFn = Callable[[dict[str, Any], Context], None]


def same_dtype(dtype: np.dtype, params: Mapping[str, Any]) -> np.dtype:
    """scipy's rule: the output has the input's dtype unless ``output`` names one."""
    out = params.get("output")
    return np.dtype(out) if out is not None else np.dtype(dtype)


def no_halo(params: Mapping[str, Any], ndim: int) -> tuple[int, ...]:
    return (0,) * ndim


def mode_edges(params: Mapping[str, Any], ndim: int) -> tuple[Edge, ...]:
    """Per axis, ``"periodic"`` where ``mode`` wraps along an active axis, else
    ``"none"``: how a local operation with a ``mode`` reads beyond the edges."""
    mode = params.get("mode")
    if mode is None:
        return ("none",) * ndim
    active = axes_tuple(params.get("axes"), ndim)
    edges: list[Edge] = ["none"] * ndim
    for axis, m in zip(active, expand(mode, len(active)), strict=True):
        edges[axis] = "periodic" if m in WRAP_MODES else "none"
    return tuple(edges)


def reaching_edges(steps: Sequence[tuple[Sequence[int], Sequence[Edge]]], ndim: int) -> list[set[Edge]]:
    """Per axis, the edge rules of the steps (``(reach, edges)`` each) that reach
    along it: how the halo of a run of them must be taken there."""
    return [{edges[axis] for reach, edges in steps if reach[axis] > 0} for axis in range(ndim)]


@dataclass(frozen=True)
class Operation:
    """The single declaration of an operation.

    name:      the name in Python, pipeline files and the CLI (scipy's where it has one).
    summary_text, doc_text: one line for ``batchproc ops`` and the numpydoc body;
               or ``doc_of``: the scipy.ndimage function whose docstring gives both,
               read when :attr:`summary` or :attr:`doc` is first asked for (importing
               scipy.ndimage costs a process a fifth of a second; a run needs no docs).
    params:    in scipy's order; the first argument (the input array) is implicit.
    kind:      see :data:`Kind`.
    block:     ``block(x, *aligned_blocks, **params) -> ndarray`` for local/pointwise ops.
    fast:      ``fast(dtype, params)`` -> a compiled block kernel bit-identical to
               ``block`` for that input, or None where it does not apply.
    fuse:      ``fuse(dtype, params, then, then_params)`` -> a compiled block kernel
               that also does the pointwise step ``then`` (its name) that follows,
               bit-identical to the two in turn, or None (:func:`batchproc.blocks.fused`).
    halo:      per-axis reach of one output voxel into the input, from the parameters.
    dtype:     the output dtype from the input dtype and the parameters.
    passes:    for global ops in pipelines, ``passes(dtype, params, kernels)`` -> the
               :class:`Pass` es to run first, in order (``kernels``: the kernel
               set their partials may use).
    finish:    for global ops in pipelines, ``finish(dtype, params)`` -> a voxel-wise
               ``fn(block, *results)`` given every pass's result (``located``: also
               ``where=``, the block's box, which must be a block the passes saw:
               the steps after such an operation reach no neighbours).
    apply:     for global ops outside pipelines (histogram), ``apply(x, **params)``
               -> the lazy result and the function that turns it into scipy's.
    relate:    checks between parameters once the input's ndim/dtype are known.
    probed:    whether validation always runs the block kernel (scipy's) on one
               voxel (:meth:`_probe`); False: not in a run planned on the compiled
               kernels where one covers the parameters, as the declared checks and
               that kernel's coverage refuse all that scipy refuses
               (``tests/ops/test_declared.py`` holds the operations that say so to it).
    scipy:     True when ``scipy.ndimage`` has a function of this name and signature.
    """

    name: str
    params: tuple[Param, ...]
    kind: Kind
    summary_text: str = ""
    doc_text: str = ""
    doc_of: str | None = None
    block: BlockFn | None = None
    halo: HaloFn = no_halo
    dtype: DtypeFn = same_dtype
    apply: Callable[..., Any] | None = None
    passes: Callable[[np.dtype, Mapping[str, Any], str], tuple[Pass, ...]] | None = None
    finish: Callable[[np.dtype, Mapping[str, Any]], BlockFn] | None = None
    relate: RelateFn | None = None
    probed: bool = True
    scipy: bool = False
    in_pipeline: bool = True
    returns_array: bool = True
    edge_rule: Callable[[Mapping[str, Any], int], tuple[Edge, ...]] | None = None
    fast: Callable[[np.dtype, Mapping[str, Any]], BlockFn | None] | None = None
    fuse: Callable[[np.dtype, Mapping[str, Any], str, Mapping[str, Any]], BlockFn | None] | None = None
    compiled_global: bool = False  # a global op with a compiled path of its own
    located: bool = False
    #: Where a result may differ from scipy's in the last bits (the promise's
    #: stated exceptions): ``tolerance(input, scipy_result)`` -> the largest
    #: absolute difference allowed at scipy's finite values; None: bit for bit.
    tolerance: Callable[[np.ndarray, np.ndarray], float] | None = None
    #: ``(fn, dtype)``: the Python API also returns ``fn(*pass results)`` as a lazy
    #: 0-d array of ``dtype`` (label's count of objects, as scipy returns it).
    also: tuple[Callable[..., Any], Any] | None = None

    @cached_property
    def doc(self) -> str:
        """The numpydoc body: ``doc_text``, or scipy's docstring of ``doc_of``."""
        if self.doc_of is None:
            return self.doc_text
        import scipy.ndimage

        return getattr(scipy.ndimage, self.doc_of).__doc__ or ""

    @cached_property
    def summary(self) -> str:
        """One line: ``summary_text``, or the first line of :attr:`doc`."""
        if self.summary_text or self.doc_of is None:
            return self.summary_text
        lines = self.doc.strip().splitlines()
        return lines[0].strip() if lines else self.name

    @property
    def has_compiled(self) -> bool:
        """Does the ``compiled`` kernel set change how this op runs?"""
        return self.fast is not None or self.compiled_global

    def kernel(self, dtype: np.dtype, params: Mapping[str, Any], kernels: str) -> BlockFn:
        """The block kernel to run for input ``dtype``: the compiled one where it
        covers these parameters and the ``compiled`` set is active, else scipy's."""
        if kernels == "compiled" and self.fast is not None:
            fast = self.fast(np.dtype(dtype), params)
            if fast is not None:
                return fast
        assert self.block is not None
        return self.block

    def then(self, dtype: np.dtype, params: Mapping[str, Any], kernels: str) -> Callable[[str, Mapping[str, Any]], BlockFn | None] | None:
        """How this step takes in the pointwise step after it, in the kernel set
        ``kernels``: ``then(name, params)`` -> one kernel for both, or None; None
        where it never does."""
        if kernels != "compiled" or self.fuse is None:
            return None
        return partial(self.fuse, np.dtype(dtype), params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def aligned(self) -> tuple[str, ...]:
        """Names of the parameters that are arrays aligned with the input."""
        return tuple(p.name for p in self.params if p.array)

    def edges(self, params: Mapping[str, Any], ndim: int) -> tuple[Edge, ...]:
        """Per axis, how this operation reads beyond the array's edges:
        ``"none"`` (scipy's own mode at the edge), ``"periodic"`` (wrap modes read the
        far side) or ``"whole"`` (both at once: the axis must be one chunk)."""
        if self.edge_rule is not None:
            return self.edge_rule(params, ndim)
        if self.kind != "local":
            return ("none",) * ndim
        return mode_edges(params, ndim)

    def signature(self) -> inspect.Signature:
        """scipy's signature: ``(input, <params>)``, keyword-only after ``*``."""
        parameters = [inspect.Parameter("input", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        for p in self.params:
            kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if p.positional else inspect.Parameter.KEYWORD_ONLY
            parameters.append(inspect.Parameter(p.name, kind, default=p.default))
        return inspect.Signature(parameters)

    def validate(self, given: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
        """Check ``given`` (names → values) and return all parameters, normalized.

        Unknown names, missing required values, wrong types and impossible values
        raise :class:`BatchprocError` naming the operation (or step) and parameter.
        """
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown:
            valid = ", ".join(p.name for p in self.params) or "(none)"
            raise BatchprocError(f"{ctx.where}: unknown parameter {', '.join(repr(u) for u in unknown)}; valid parameters are: {valid}.")
        out: dict[str, Any] = {}
        for p in self.params:
            if p.name in given:
                value = given[p.name]
                out[p.name] = value if p.array else p.check(p.name, value, ctx)
            elif p.required:
                raise BatchprocError(f"{ctx.where}: parameter '{p.name}' is required.")
            else:
                out[p.name] = p.default
        if self.relate is not None:
            self.relate(out, ctx)
        self._probe(out, ctx)
        return out

    def _probe(self, params: Mapping[str, Any], ctx: Context) -> None:
        """Run the block kernel once on a one-voxel array of the input's ndim/dtype.

        The kernel is scipy itself, so whatever combination scipy refuses (its rules
        differ between functions) is refused here, up front, rather than in a task
        mid-computation. Costs microseconds: the probe has one voxel.

        No probe for an operation not ``probed``, in a run planned on the
        compiled kernels (``ctx.kernels``) where one covers these parameters: the
        run then need not import scipy.ndimage (a fifth of a second).
        """
        if self.block is None or ctx.ndim is None or ctx.dtype is None:
            return
        if not self.probed and ctx.kernels == "compiled" and self.fast is not None and self.fast(ctx.dtype, params) is not None:
            return
        tiny = np.zeros((1,) * ctx.ndim, dtype=ctx.dtype)
        present = [n for n in self.aligned if hasattr(params.get(n), "shape")]
        kwargs = {k: v for k, v in params.items() if k not in present}
        extra = [np.zeros(tiny.shape, dtype=params[n].dtype) for n in present]
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.block(tiny, *extra, **kwargs)
        except BatchprocError:
            raise
        except Exception as err:  # scipy's ValueError, RuntimeError, IndexError, ...
            raise refusal(f"{ctx.where}: scipy.ndimage refuses these parameters: {err}", type(err)) from None


REGISTRY: dict[str, Operation] = {}


def register(op: Operation) -> Operation:
    if op.name in REGISTRY:
        raise RuntimeError(f"operation {op.name!r} declared twice")
    REGISTRY[op.name] = op
    return op


def get(name: str, *, where: str = "op") -> Operation:
    """The operation called ``name``; an unknown name lists the valid ones."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(REGISTRY))
        raise BatchprocError(f"{where}: unknown operation {name!r}; valid operations are: {valid}.") from None
