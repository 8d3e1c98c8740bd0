"""Pipelines: an ordered list of steps, from a YAML/JSON file, ``--step`` strings or
code; validated against the registry before anything runs, and planned into
stages. A run binds the pipeline to its input once, into a plan
(:mod:`batchproc.plan`); :meth:`Pipeline.apply` builds the same steps as a lazy
dask array, in stages: consecutive local operations fuse into one ``map_overlap``
(their halos add up), a global operation (equalize, astype) starts a new stage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from batchproc.errors import BatchprocError
from batchproc.ops import REGISTRY, Context, Operation, get
from batchproc.ops._checks import schema_of

if TYPE_CHECKING:
    import dask.array as da

VERSION = 1
TOP_LEVEL_KEYS = ("version", "steps")


@dataclass(frozen=True)
class Step:
    """One step as the user wrote it (``given``) and its operation."""

    op: Operation
    given: dict[str, Any]
    number: int  # 1-based, as in messages

    def context(self, ndim: int | None = None, dtype: np.dtype | None = None) -> Context:
        return Context(self.op.name, ndim, dtype, step=self.number)


@dataclass(frozen=True)
class Stage:
    """Steps that run together: one ``map_overlap`` (local) or one global op."""

    kind: str  # "local" or "global"
    steps: tuple[tuple[Operation, dict[str, Any]], ...]
    halo: tuple[int, ...]

    def describe(self) -> str:
        names = " -> ".join(op.name for op, _ in self.steps)
        return f"{self.kind}: {names}" + (f" (halo {self.halo})" if self.kind == "local" else "")


class Pipeline:
    """An ordered list of steps, validated once, at construction.

    Parameters
    ----------
    steps : sequence of mappings
        Each ``{"op": name, **parameters}``, parameters named as in scipy.

    Raises
    ------
    BatchprocError
        An unknown operation or parameter, or an impossible value, naming the
        step and the parameter (also the class scipy raises for it).

    See Also
    --------
    Pipeline.load : the same steps from a pipeline file (YAML or JSON).
    Pipeline.from_strings : from ``--step`` strings such as ``"gaussian_filter:sigma=2"``.

    Examples
    --------
    >>> import numpy as np, batchproc
    >>> pipeline = batchproc.Pipeline([{"op": "gaussian_filter", "sigma": 1}, {"op": "threshold", "above": 0.5}])
    >>> mask = pipeline.apply(np.eye(8))
    >>> mask.dtype, mask.shape
    (dtype('bool'), (8, 8))
    >>> pipeline.to_dict()["steps"][1]
    {'op': 'threshold', 'above': 0.5}
    """

    def __init__(self, steps: Sequence[Mapping[str, Any]]) -> None:
        if not isinstance(steps, Sequence) or isinstance(steps, str) or not steps:
            raise BatchprocError("pipeline: 'steps' must be a non-empty list of steps such as {op: gaussian_filter, sigma: 2}.")
        parsed = []
        for number, raw in enumerate(steps, start=1):
            if not isinstance(raw, Mapping) or "op" not in raw:
                raise BatchprocError(f"pipeline: step {number} must be a mapping with an 'op' key; got {raw!r}.")
            op = get(raw["op"], where=f"step {number}")
            if not op.in_pipeline:
                raise BatchprocError(f"step {number}: {op.name} returns counts, not an image; use `batchproc {op.name}` instead.")
            given = {k: v for k, v in raw.items() if k != "op"}
            step = Step(op, given, number)
            op.validate(given, step.context())  # before any input is opened
            parsed.append(step)
        self.steps: tuple[Step, ...] = tuple(parsed)

    # ------------------------------------------------------------ construction

    @classmethod
    def load(cls, path: str | Path) -> Pipeline:
        """Read a pipeline file (YAML; JSON is valid YAML), safely."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as err:
            raise BatchprocError(f"pipeline: cannot read {str(p)!r}: {err.strerror}.") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise BatchprocError(f"pipeline: {str(p)!r} is not valid YAML: {err}".replace("\n", " ")) from None
        return cls.from_dict(document, where=str(p))

    @classmethod
    def from_dict(cls, document: Any, where: str = "pipeline") -> Pipeline:
        if not isinstance(document, Mapping):
            raise BatchprocError(f"pipeline: {where!r} must hold a mapping with 'version' and 'steps'.")
        unknown = sorted(set(document) - set(TOP_LEVEL_KEYS))
        if unknown:
            raise BatchprocError(f"pipeline: unknown key {', '.join(map(repr, unknown))} in {where!r}; valid keys are: {', '.join(TOP_LEVEL_KEYS)}.")
        version = document.get("version", VERSION)
        if version != VERSION:
            raise BatchprocError(f"pipeline: 'version' must be {VERSION}; got {version!r}.")
        return cls(document.get("steps"))

    @classmethod
    def from_strings(cls, specs: Iterable[str]) -> Pipeline:
        """Steps written as ``OP`` or ``OP:name=value,name=value`` (values as YAML,
        so ``size=[3,3]`` and ``mode=wrap`` work)."""
        return cls([parse_step(spec) for spec in specs])

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "steps": [{"op": s.op.name, **_plain(s.given)} for s in self.steps]}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------ running

    def stages(self, ndim: int, dtype: np.dtype) -> list[Stage]:
        """The steps bound to an ``ndim``-dimensional ``dtype`` input, as dask runs
        them ([`apply`][batchproc.Pipeline.apply]): runs of local steps that share one ``map_overlap``,
        and the global steps between them."""
        from batchproc.overlap import stage_edges, stage_halo
        from batchproc.plan import bind

        stages: list[Stage] = []
        current: list[tuple[Operation, dict[str, Any]]] = []

        def close() -> None:
            if current:
                stages.append(Stage("local", tuple(current), stage_halo(current, ndim)))
                current.clear()

        for step in bind(self.steps, ndim, dtype):
            op, params = step.op, dict(step.params)
            if op.kind == "global":
                close()
                stages.append(Stage("global", ((op, params),), (0,) * ndim))
            elif stage_edges([*current, (op, params)], ndim) is None:
                close()
                current.append((op, params))
            else:
                current.append((op, params))
        close()
        return stages

    def apply(self, x: Any) -> da.Array:
        """The pipeline applied to ``x``, lazily, as a dask array."""
        from batchproc.apply import as_array, global_apply
        from batchproc.overlap import map_stage

        array = as_array(x, "pipeline")
        for stage in self.stages(array.ndim, np.dtype(array.dtype)):
            if stage.kind == "local":
                array = map_stage(array, stage.steps)
            else:
                ((op, params),) = stage.steps
                array = global_apply(array, op, params)
        return array

    def plan(self, input: Any, chunks: Sequence[int] | None = None, shards: Sequence[int] | bool | None = None) -> Any:
        """The plan of running this pipeline on ``input`` (a path or URL): stages,
        halo, blocks, output chunks and shards, and memory, made without reading a
        voxel (``batchproc run --dry-run`` prints it)."""
        from batchproc.engine.jobs import plan_run

        return plan_run(self, input, None if chunks is None else tuple(chunks), shards)

    def run(
        self, input: Any, output: str | Path, *, chunks: Sequence[int] | None = None, shards: Sequence[int] | bool | None = None, **write_options: Any
    ) -> str:
        """Open ``input``, apply the pipeline, write OME-Zarr to ``output``.

        ``chunks`` are the output's chunks (default: about 32 MiB at the widest
        dtype a block passes through, whole multiples of the input's own); the
        engine computes blocks of several chunks where chunks are small.
        ``shards``: zarr shards holding the chunks, whole multiples of them, each
        written whole by one block (default: shards the size of a block when the
        output would have more than 10,000 chunk files; False: never).
        ``write_options``: ``codec``, ``levels``, ``overwrite``, ``resume``
        (see [`batchproc.write`][batchproc.write])."""
        from batchproc.engine.jobs import run_pipeline

        return run_pipeline(self, input, output, chunks=None if chunks is None else tuple(chunks), shards=shards, **write_options)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.dtype):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (q.strip() for q in parts) if p]


_SPECIAL_FLOATS = {"inf": float("inf"), "+inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}


def parse_step(spec: str) -> dict[str, Any]:
    """``"gaussian_filter:sigma=2,mode=wrap"`` -> ``{"op": "gaussian_filter", "sigma": 2, "mode": "wrap"}``."""
    name, _, rest = spec.partition(":")
    step: dict[str, Any] = {"op": name.strip()}
    for item in _split_top_level(rest):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise BatchprocError(f"--step {spec!r}: expected OP:name=value,name=value; cannot read {item!r}.")
        try:
            # YAML spells infinity .inf (and NaN .nan); on a command line people type -inf.
            text = value.strip().lower()
            step[key.strip()] = _SPECIAL_FLOATS[text] if text in _SPECIAL_FLOATS else (yaml.safe_load(value) if text else None)
        except yaml.YAMLError:
            raise BatchprocError(f"--step {spec!r}: cannot read the value of {key.strip()!r}: {value!r}.") from None
    return step


def pipeline_schema() -> dict[str, Any]:
    """A JSON Schema for pipeline files, generated from the registry."""
    variants = []
    for name, op in sorted(REGISTRY.items()):
        if not op.in_pipeline:
            continue
        properties: dict[str, Any] = {"op": {"const": name}}
        for p in op.params:
            if p.array and name != "where":
                continue
            schema = {**schema_of(p.check), **p.json_schema}  # what the check accepts, and what the declaration adds
            schema["description"] = p.help if "description" not in schema else f"{p.help} ({schema['description']})"
            if not p.required:
                schema.setdefault("default", _plain(p.default))
            properties[p.name] = schema
        required = ["op"] + [p.name for p in op.params if p.required]
        variants.append(
            {"type": "object", "title": name, "description": op.summary, "properties": properties, "required": required, "additionalProperties": False}
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "batchproc pipeline",
        "type": "object",
        "properties": {"version": {"const": VERSION}, "steps": {"type": "array", "minItems": 1, "items": {"oneOf": variants}}},
        "required": ["steps"],
        "additionalProperties": False,
    }
