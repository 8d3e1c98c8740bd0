"""Pictures: one slice before and after (``batchproc preview``) and histogram charts
(``batchproc histogram --plot``), drawn with matplotlib's object API on its Agg
canvas (no screen, no pyplot state). The run report (:mod:`batchproc.report`)
draws its thumbnails and histograms with the same functions.

A slice is shown as a viewer shows it: the axes in NGFF's order (time, channel,
then space as z, y, x), the last two on screen (rows, columns), and each voxel
drawn at its physical size, so a volume of thick slices is not squashed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError

#: The rank of each axis name in NGFF's order; other names go between channel and space.
_NGFF_RANK = {"t": 0, "c": 1, "z": 3, "y": 4, "x": 5}
#: The automatic log scale: when the tallest bar is at least this many times the
#: next, the others are under 1/20 of the plot's height and read as nothing.
DWARF_RATIO = 20.0
BAR_COLOR = "#3b6ea5"


def display_name(source: Any) -> str:
    """What a picture calls ``source``: the file's or object's own name, never the
    folders or bucket it sits in.

    Parameters
    ----------
    source : str or Path
        A path, a URL, ``file.h5:/dataset``, or a description such as ``5 files``.

    Returns
    -------
    str

    Examples
    --------
    >>> display_name("/home/me/scans/knee.nii.gz")
    'knee.nii.gz'
    >>> display_name("s3://bucket/archive/scan7.ome.zarr/?versionId=3")
    'scan7.ome.zarr'
    >>> display_name("/data/cells.h5:/raw/t0")
    'cells.h5:/raw/t0'
    """
    text = str(source)
    h5 = re.match(r"^(.*\.(?:h5|hdf5|hdf)):(/.*)$", text, re.IGNORECASE)
    if h5:
        return f"{PurePosixPath(h5.group(1)).name}:{h5.group(2)}"
    text = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", text).split("?", 1)[0].split("#", 1)[0]
    parts = [p for p in re.split(r"[/\\]", text) if p]
    return parts[-1] if parts else str(source)


def ngff_order(axes: str, ndim: int) -> list[int]:
    """The indices of an image's axes in NGFF's order: time, channel, other named
    axes, then space as z, y, x. Without one letter per axis, the stored order.

    Examples
    --------
    >>> ngff_order("xyz", 3)  # NIfTI's order
    [2, 1, 0]
    >>> ngff_order("xyzt", 4)
    [3, 2, 1, 0]
    >>> ngff_order("zyx", 3)
    [0, 1, 2]
    """
    if len(axes) != ndim:
        return list(range(ndim))
    return sorted(range(ndim), key=lambda i: (_NGFF_RANK.get(axes[i].lower(), 2), i))


@dataclass(frozen=True)
class Plane:
    """One slice of an image as it is drawn.

    pixels:  the slice, rows × columns, in memory (bool as uint8).
    rows, columns: the names of the axes shown down and across.
    spacing: the physical size of a pixel down and across.
    unit:    the unit of that spacing where the image states it, else "".
    where:   how the slice was taken, such as ``z=12 of 0-23``.
    """

    pixels: np.ndarray
    rows: str
    columns: str
    spacing: tuple[float, float]
    unit: str
    where: str

    @property
    def aspect(self) -> float:
        """Physical height over width of the whole slice."""
        h, w = self.pixels.shape
        return (h * self.spacing[0]) / (w * self.spacing[1])

    def caption(self) -> str:
        """The slice, its orientation and voxel size in a line, such as
        ``z=12 of 0-23 · rows y, columns x · voxel 2×1 mm``."""
        unit = f" {self.unit}" if self.unit else ""
        size = f"rows {self.rows}, columns {self.columns} · voxel {self.spacing[0]:.3g}×{self.spacing[1]:.3g}{unit}"
        return f"{self.where} · {size}" if self.where else size


def parse_slice(text: str | None, axes: str, ndim: int) -> tuple[int | None, int | None]:
    """``--slice AXIS=INDEX``: the axis (by number, or by name such as ``z``) and the index.

    Returns ``(None, None)`` when ``text`` is None (the default slice).

    Examples
    --------
    >>> parse_slice("z=12", "zyx", 3)
    (0, 12)
    >>> parse_slice("2=5", "xyz", 3)
    (2, 5)
    """
    if text is None:
        return None, None
    axis_text, eq, index_text = (part.strip() for part in text.partition("="))
    try:
        index = int(index_text)
    except ValueError:
        raise BatchprocError(f"--slice must be AXIS=INDEX, the axis by number or name, such as 0=12 or z=12; got {text!r}.") from None
    named = len(axes) == ndim and len(axis_text) == 1 and axis_text.lower() in axes.lower()
    if not eq or not (axis_text.isdigit() or named):
        raise BatchprocError(f"--slice must be AXIS=INDEX, the axis by number or name, such as 0=12 or z=12; got {text!r}.")
    axis = axes.lower().index(axis_text.lower()) if named else int(axis_text)
    if ndim <= 2:
        raise BatchprocError(f"--slice: the image is {ndim}-D and is shown whole; there is no axis to slice (got {text!r}).")
    if not 0 <= axis < ndim:
        raise BatchprocError(f"--slice: axis must be from 0 to {ndim - 1} (or one of {axes!r}); got {text!r}.")
    return axis, index


def image_plane(image: Any, axis: int | str | None = None, index: int | None = None) -> Plane:
    """The slice of ``image`` a preview shows, read into memory (one plane only).

    The axes not shown are taken at ``index`` along ``axis`` (a number, or an axis
    name, looked up in this image's axes) and at their middle otherwise; the
    two shown are the last two of the others in NGFF order (:func:`ngff_order`).

    Parameters
    ----------
    image : batchproc.Image
        From :func:`batchproc.open_image`: its ``axes``, ``spacing`` and ``units``
        set the orientation and the aspect ratio.
    axis : int or str, optional
        The axis to slice (default: none chosen; every hidden axis at its middle).
    index : int, optional
        Where along ``axis`` (default: its middle).

    Returns
    -------
    Plane

    Examples
    --------
    >>> import batchproc, numpy as np, dask.array as da
    >>> image = batchproc.Image(da.zeros((30, 20, 6)), "xyz", (1.0, 1.0, 3.0), "knee.nii")
    >>> plane = image_plane(image)
    >>> plane.pixels.shape, plane.rows, plane.columns, plane.where
    ((20, 30), 'y', 'x', 'z=3 of 0-5')
    """
    shape, ndim = tuple(image.shape), len(image.shape)
    names = image.axes if len(image.axes) == ndim else "".join(str(i) for i in range(ndim)) if ndim <= 10 else None
    if isinstance(axis, str):
        axis = names.lower().index(axis.lower()) if names and axis.lower() in names.lower() else None
    order = ngff_order(image.axes, ndim)
    hidden = [a for a in order if a != axis][:-2] + ([axis] if axis is not None and ndim > 2 else [])
    shown = [a for a in order if a not in hidden]
    key: list[Any] = [slice(None)] * ndim
    where = []
    for a in sorted(hidden, key=order.index):
        i = index if a == axis and index is not None else shape[a] // 2
        if not 0 <= i < shape[a]:
            raise BatchprocError(
                f"--slice: index must be from 0 to {shape[a] - 1} along axis {a} ({_name(names, a)}) of {display_name(image.source)}; got {i}."
            )
        key[a] = i
        where.append(f"{_name(names, a)}={i} of 0-{shape[a] - 1}")
    x = image.data[tuple(key)]
    # The sliced array keeps the shown axes in their stored order: put them in NGFF's.
    kept = [a for a in range(ndim) if a not in hidden]
    if ndim >= 2 and kept != shown:
        x = x.transpose([kept.index(a) for a in shown])
    from batchproc.engine import compute

    pixels = np.asarray(compute([x])[0] if hasattr(x, "compute") else x)
    if pixels.ndim == 1:
        pixels = pixels[None, :]
        shown = [-1, *shown]
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8)
    spacing = tuple(float(image.spacing[a]) if a >= 0 else 1.0 for a in shown)
    units = {image.units[a] for a in shown if a >= 0} if hasattr(image, "units") else set()
    unit = _short_unit(units.pop()) if len(units) == 1 and None not in units else ""
    return Plane(pixels, _name(names, shown[0]), _name(names, shown[1]), (spacing[0], spacing[1]), unit, ", ".join(where))


def _name(names: str | None, axis: int) -> str:
    return names[axis] if names and 0 <= axis < len(names) else "-" if axis < 0 else str(axis)


_SHORT_UNITS = {"micrometer": "µm", "millimeter": "mm", "nanometer": "nm", "centimeter": "cm", "meter": "m", "second": "s", "millisecond": "ms"}


def _short_unit(unit: str | None) -> str:
    return _SHORT_UNITS.get(unit or "", unit or "")


def _figure(width: float, height: float, dpi: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi)


def preview_figure(panels: Sequence[tuple[str, Plane]], *, size: float = 5.0, dpi: float = 100, captions: bool = True) -> Any:
    """Slices side by side, each drawn at its physical aspect ratio.

    Parameters
    ----------
    panels : sequence of (str, Plane)
        A title and a slice (from :func:`image_plane`) for each panel.
    size : float
        The longer side of each slice, in inches.
    dpi : float
        Pixels per inch.
    captions : bool
        Add each slice's caption (:meth:`Plane.caption`) under its title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> thick = Plane(np.zeros((10, 40)), "z", "x", (4.0, 1.0), "mm", "y=0 of 0-9")
    >>> figure = preview_figure([("knee.nii", thick)])
    >>> round(figure.axes[0].get_aspect(), 3)  # a voxel 4 mm tall, 1 mm wide
    4.0
    """
    boxes = []
    for _, plane in panels:
        aspect = plane.aspect
        # The longer side is `size`; a very thin slice keeps at least 1/20 of it.
        width, height = (size, max(size * aspect, size / 20)) if aspect <= 1 else (max(size / aspect, size / 20), size)
        boxes.append((width, height))
    gap, top = 0.3, 0.55 if captions else 0.35
    total_w = sum(w for w, _ in boxes) + gap * (len(boxes) + 1)
    total_h = max(h for _, h in boxes) + top + gap
    fig = _figure(total_w, total_h, dpi)
    left = gap
    for (title, plane), (w, h) in zip(panels, boxes, strict=True):
        ax = fig.add_axes((left / total_w, gap / total_h, w / total_w, h / total_h))
        # aspect: the height of one pixel over its width, in data units.
        ax.imshow(plane.pixels, cmap="gray", interpolation="nearest", aspect=plane.spacing[0] / plane.spacing[1])
        ax.set_title(f"{title}\n{plane.caption()}" if captions else title, fontsize=8 if captions else 7)
        # A thin frame instead of axes: a mask's white edge still shows where the slice ends.
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("#999999")
            spine.set_linewidth(0.8)
        left += w + gap
    return fig


def preview_png(input: Any, output: str | Path, *, compare: Any = None, slice_spec: str | None = None) -> Path:
    """One slice of ``input`` as a PNG; beside it ``compare``, or, for a store
    batchproc wrote, the input recorded in its provenance (before | after).

    Each slice is drawn in NGFF axis order at the voxel spacing's aspect ratio
    (see :func:`image_plane`); ``slice_spec`` is ``--slice AXIS=INDEX``, the axis
    by number (of ``input``) or by name, applied to both images.

    Examples
    --------
    >>> preview_png("out/edges.ome.zarr", "preview.png", slice_spec="z=12")  # doctest: +SKIP
    PosixPath('preview.png')
    """
    from batchproc.io import open_image, read_store_info

    first = open_image(input)
    images = [(str(input), first)]
    info = read_store_info(input) if Path(str(input)).is_dir() else None
    before = compare or (info or {}).get("provenance", {}).get("input")
    if before:
        images.insert(0, (str(before), open_image(before)))
    axis, index = parse_slice(slice_spec, first.axes, first.ndim)
    # The same axis in both images: by name where the first image names its axes.
    named: int | str | None = first.axes[axis] if axis is not None and len(first.axes) == first.ndim else axis
    panels = [(display_name(name), image_plane(image, named if image is not first else axis, index)) for name, image in images]
    return save_png(preview_figure(panels), output)


def tallest_ratio(counts: Any) -> float:
    """How many times the tallest bar is the next tallest (1.0 when fewer than two
    bars are non-empty: a log scale would show nothing more).

    Examples
    --------
    >>> tallest_ratio([9000, 30, 12])
    300.0
    >>> tallest_ratio([500, 0, 0])
    1.0
    """
    values = np.sort(np.asarray(counts, dtype=np.float64).ravel())[::-1]
    if values.size < 2 or values[1] <= 0:
        return 1.0
    return float(values[0] / values[1])


def draw_histogram(ax: Any, edges: Any, counts: Any, title: str, *, log: bool | None = None, fontsize: float = 9) -> bool:
    """Bars of ``counts`` over ``edges`` on the matplotlib axes ``ax``; whether the
    y-scale is logarithmic.

    ``log`` None chooses: a log scale when the tallest bar is at least
    :data:`DWARF_RATIO` times the next, said in a note on the plot.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    edges, counts : array
        ``bins + 1`` edges and ``bins`` counts.
    title : str
        Shown as given: a file's name (:func:`display_name`), not its path.
    log : bool, optional
        True: log; False: linear; None: automatic.
    fontsize : float
        Of the title and labels.

    Returns
    -------
    bool

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().add_subplot()
    >>> draw_histogram(ax, [0, 1, 2, 3], [5000, 20, 7], "scan.tif")
    True
    >>> ax.texts[0].get_text()
    'log scale: the tallest bar is 250× the next'
    """
    edges, counts = np.asarray(edges, dtype=np.float64), np.asarray(counts)
    ratio = tallest_ratio(counts)
    use_log = ratio >= DWARF_RATIO if log is None else bool(log)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=BAR_COLOR)
    ax.set_xlabel("intensity", fontsize=fontsize)
    ax.set_ylabel("voxels (log scale)" if use_log else "voxels", fontsize=fontsize)
    ax.set_title(title, fontsize=fontsize)
    ax.tick_params(labelsize=fontsize - 1)
    if len(counts) <= 16 and np.allclose(edges % 1, 0.5):  # bars centred on integers: whole ticks
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if use_log:
        ax.set_yscale("log")
        # Counts are whole: from just under 1 a single voxel still shows as a bar.
        ax.set_ylim(bottom=0.7, top=max(float(counts.max()), 1.0) * 2)
        if log is None:
            # Said on the plot: a reader must know the heights are not proportional.
            note = f"log scale: the tallest bar is {ratio:,.0f}× the next" if fontsize >= 8 else f"log: tallest {ratio:,.0f}× next"
            ax.text(0.99, 0.97, note, transform=ax.transAxes, ha="right", va="top", fontsize=fontsize - 1, color="#444444")
    return use_log


def histogram_figure(series: Sequence[tuple[str, Any, Any]], *, log: bool | None = None, panel: tuple[float, float] = (7, 3.5), dpi: float = 100) -> Any:
    """Histogram charts side by side, one per ``(title, edges, counts)``.

    Parameters
    ----------
    series : sequence of (str, array, array)
        Each chart's title, its ``bins + 1`` edges and its ``bins`` counts.
    log : bool, optional
        True: log y-scale; False: linear; None (default): log where one bar
        dwarfs the rest (:func:`draw_histogram`).
    panel : (float, float)
        Width and height of each chart, in inches.
    dpi : float
        Pixels per inch.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> figure = histogram_figure([("knee.nii.gz", np.linspace(0, 4, 5), [900, 3, 2, 1])])
    >>> figure.axes[0].get_yscale(), figure.axes[0].get_title()
    ('log', 'knee.nii.gz')
    """
    fig = _figure(panel[0] * len(series), panel[1], dpi)
    small = panel[1] < 2.5
    for i, (title, edges, counts) in enumerate(series):
        draw_histogram(fig.add_subplot(1, len(series), i + 1), edges, counts, title, log=log, fontsize=7 if small else 9)
    fig.tight_layout(pad=0.4 if small else 1.08)
    return fig


def histogram_png(edges: np.ndarray, counts: np.ndarray, path: str | Path, title: str, *, log: bool | None = None) -> Path:
    """A bar chart of ``counts`` over ``edges``, written as a PNG at ``path``.

    ``title`` is shown as given: pass :func:`display_name` of the input. ``log``:
    see :func:`histogram_figure`.

    Examples
    --------
    >>> import numpy as np
    >>> histogram_png(np.linspace(0, 255, 257), np.ones(256), "h.png", "scan.tif")  # doctest: +SKIP
    PosixPath('h.png')
    """
    return save_png(histogram_figure([(title, edges, counts)], log=log), path)


def plane_histogram(pixels: np.ndarray, bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, counts)`` of a slice in memory over its own range (a report's
    small histogram: the slice it shows, not the whole volume, so that a
    report reads one plane per image).

    Examples
    --------
    >>> edges, counts = plane_histogram(np.array([[0, 1], [1, 1]], dtype=np.uint8))
    >>> edges.tolist(), counts.tolist()
    ([-0.5, 0.5, 1.5], [1, 3])
    """
    values = pixels[np.isfinite(pixels)] if pixels.dtype.kind == "f" else pixels.ravel()
    if values.size == 0:
        return np.array([0.0, 1.0]), np.array([0])
    lo, hi = float(values.min()), float(values.max())
    if pixels.dtype.kind in "biu" and hi - lo + 1 <= bins:
        # Few integer values (a mask, labels): one bar centred on each.
        bins, lo, hi = int(hi - lo) + 1, lo - 0.5, hi + 0.5
    elif lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return edges, counts


def png_bytes(figure: Any) -> bytes:
    """``figure`` as PNG bytes, cropped to what was drawn.

    Examples
    --------
    >>> png_bytes(histogram_figure([("scan.tif", [0, 1, 2], [3, 4])]))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.05)
    return buffer.getvalue()


def save_png(figure: Any, path: str | Path) -> Path:
    """``figure`` written as a PNG at ``path``; the path.

    Examples
    --------
    >>> save_png(histogram_figure([("scan.tif", [0, 1, 2], [3, 4])]), "h.png")  # doctest: +SKIP
    PosixPath('h.png')
    """
    Path(path).write_bytes(png_bytes(figure))
    return Path(path)
