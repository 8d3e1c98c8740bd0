"""Pictures: the course's side-by-side before/after figure and histogram charts
(matplotlib with the Agg backend: no screen needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def histogram_png(edges: np.ndarray, counts: np.ndarray, path: Path, title: str) -> None:
    """A bar chart of ``counts`` over ``edges``, written as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#3b6ea5")
    ax.set_xlabel("intensity")
    ax.set_ylabel("voxels")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_slice(text: str | None, ndim: int) -> tuple[int, int | None]:
    if text is None:
        return 0, None
    axis_text, eq, index_text = text.partition("=")
    try:
        axis, index = int(axis_text), int(index_text)
    except ValueError:
        raise BatchprocError(f"--slice must be AXIS=INDEX such as 0=12; got {text!r}.") from None
    if not eq or not 0 <= axis < ndim:
        raise BatchprocError(f"--slice: axis must be from 0 to {ndim - 1}; got {text!r}.")
    return axis, index


def _plane(x: Any, axis: int, index: int | None, name: str) -> np.ndarray:
    while x.ndim > 2:
        i = x.shape[axis] // 2 if index is None else index
        if not 0 <= i < x.shape[axis]:
            raise BatchprocError(f"--slice: index must be from 0 to {x.shape[axis] - 1} along axis {axis} of {name}; got {i}.")
        x = x[(slice(None),) * axis + (i,)]
        axis, index = 0, None
    from batchproc.engine import compute

    return np.asarray(compute([x])[0] if hasattr(x, "compute") else x)


def preview_png(input: Any, output: str | Path, *, compare: Any = None, slice_spec: str | None = None) -> Path:
    """One slice of ``input`` as a PNG; beside it ``compare``, or, for a store
    batchproc wrote, the input recorded in its provenance (before | after)."""
    from batchproc.io import open_image, read_store_info

    first = open_image(input)
    panels = [(str(input), first.data)]
    info = read_store_info(input) if Path(str(input)).is_dir() else None
    before = compare or (info or {}).get("provenance", {}).get("input")
    if before:
        panels.insert(0, (str(before), open_image(before).data))
    axis, index = parse_slice(slice_spec, first.data.ndim)
    images = [(name, _plane(x, axis, index, name)) for name, x in panels]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(images), figsize=(5 * len(images), 5), dpi=100, squeeze=False)
    for ax, (name, plane) in zip(axes[0], images, strict=True):
        ax.imshow(plane.astype(np.float32) if plane.dtype == bool else plane, cmap="gray")
        ax.set_title(Path(name).name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)
    return Path(output)
