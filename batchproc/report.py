"""The run report: one self-contained HTML page about an output of ``batchproc run``
(an OME-Zarr store) or of ``batchproc batch`` (its ``--out`` folder, with the
manifest), for a person to look at after a job.

The page shows the job's inputs, pipeline and provenance, every item's status,
time and error with the failures first, and for a sample of the items (all of
them when there are few) a before/after thumbnail and histograms of the slice
shown. Everything is inline (pictures as ``data:`` URIs, one ``<style>``, no
script), and a Content-Security-Policy forbids loading anything else, so the
page can be mailed or archived as one file. Each picture reads one plane of
the input and of the output, never a whole volume.

The manifest and the stores' provenance are read through :class:`batchproc.batch.Manifest`
and :func:`batchproc.io.store.read_store_info`; the pictures are drawn by
:mod:`batchproc.render`. Every text is passed through the credential scrubber
before it is written.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchproc.errors import BatchprocError

#: Items pictured by default; past it, a sample.
PICTURES = 24
#: Rows of the items table at most; the manifest keeps every item.
ROWS = 2000
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


@dataclass
class ReportItem:
    """One item of a job as the report shows it.

    status is ``done``, ``failed`` or ``incomplete`` (a store not marked complete).
    """

    input: str
    output: str | None
    status: str
    seconds: float | None = None
    error: str | None = None
    finished: str | None = None
    host: str | None = None
    objects: int | None = None


@dataclass
class Job:
    """What a report is about: an output of ``run`` (``kind="run"``) or of ``batch``.

    info:      the ``batchproc`` attributes of the run's store, or of a batch's
               first finished item's store (version, provenance, timings); None
               when there is none.
    items:     failures (and incomplete items) first, then the rest, each group
               in natural order of the inputs.
    manifest:  the manifest a batch's items come from.
    pipelines: how many different pipelines the items ran (a batch re-run with
               another pipeline keeps the older items' records).
    """

    kind: str
    where: str
    items: list[ReportItem]
    info: dict[str, Any] | None
    manifest: str | None = None
    pipelines: int = 1


def load_job(out: str | Path) -> Job:
    """Read an output of ``batchproc run`` or ``batchproc batch``.

    Parameters
    ----------
    out : str or Path
        An OME-Zarr store written by ``run``, or a folder (or object store prefix)
        holding ``batchproc-manifest.jsonl`` from ``batch``, or that manifest.

    Returns
    -------
    Job

    Raises
    ------
    BatchprocError
        ``out`` does not exist, or is not an output of batchproc.

    Examples
    --------
    >>> job = load_job("batchproc-out")  # doctest: +SKIP
    >>> job.kind, [item.status for item in job.items][:2]  # doctest: +SKIP
    ('batch', ['failed', 'done'])
    """
    from batchproc.batch import MANIFEST, Manifest
    from batchproc.io.readers import natural_key
    from batchproc.io.remote import local_or_remote
    from batchproc.io.store import read_store_info

    where = local_or_remote(str(out))
    expected = "expected an OME-Zarr store written by `batchproc run`, or the --out folder of `batchproc batch` (it holds batchproc-manifest.jsonl)"
    if isinstance(where, Path) and not where.exists():
        raise BatchprocError(f"report: OUT {clean(str(out))!r} does not exist; {expected}.")
    if where.name == MANIFEST:
        where = where.parent
    info = _store_info(where, read_store_info)
    if info is not None:
        provenance = info.get("provenance") or {}
        complete = info.get("complete") is True
        item = ReportItem(
            input=str(provenance.get("input", "?")),
            output=str(where),
            status="done" if complete else "incomplete",
            seconds=info.get("seconds"),
            error=None if complete else "the store is not complete (the run was interrupted): `batchproc run ... --resume` finishes it",
            finished=info.get("finished"),
        )
        return Job("run", str(out), [item], info)
    manifest = Manifest(where / MANIFEST)
    try:
        manifest.path.read_text()
    except (OSError, BatchprocError):  # missing, or OUT is a file: not a batch's folder
        raise BatchprocError(f"report: OUT {clean(str(out))!r} is not an output of batchproc; {expected}.") from None
    records = manifest.load()
    items = [_batch_item(record, where) for record in records.values()]
    items.sort(key=lambda item: (item.status == "done", natural_key(item.input)))
    info = None
    for item in items:
        if item.status == "done" and item.output:
            info = _store_info(local_or_remote(item.output), read_store_info)
            if info is not None:
                break
    pipelines = len({r.get("pipeline") for r in records.values() if r.get("pipeline")}) or 1
    return Job("batch", str(out), items, info, manifest=str(manifest.path), pipelines=pipelines)


def _store_info(where: Any, read: Any) -> dict[str, Any] | None:
    try:
        return read(where)
    except (OSError, BatchprocError):  # a file, or a folder zarr cannot read: not a store
        return None


def _batch_item(record: dict[str, Any], folder: Any) -> ReportItem:
    from batchproc.io.remote import is_url

    output = record.get("output")
    if output and not is_url(output) and not Path(output).exists():
        # The manifest keeps the path as the batch was given it (perhaps relative
        # to another folder): the store is the one of that name beside the manifest.
        beside = folder / Path(output).name
        output = str(beside) if Path(str(beside)).exists() else output
    return ReportItem(
        input=str(record.get("input", "?")),
        output=output,
        status="done" if record.get("status") == "done" else "failed",
        seconds=record.get("seconds"),
        error=record.get("error"),
        finished=record.get("finished"),
        host=record.get("host"),
        objects=record.get("objects"),
    )


def clean(text: Any) -> str:
    """``text`` as the report may show it: every credential of the environment
    blanked (:func:`batchproc.io.remote.scrub`) and the user and password of a URL
    (``https://user:secret@host/...``) hidden.

    Examples
    --------
    >>> clean("https://me:hunter2@example.org/scan.tif")
    'https://***@example.org/scan.tif'
    """
    from batchproc.io.remote import scrub

    return _USERINFO.sub(r"\1***@", scrub(str(text)))


def pictured(items: list[ReportItem], budget: int) -> list[int]:
    """Which items get pictures: all of them when they fit in ``budget``; otherwise
    the failures first (at most half the budget while there are finished items to
    show too), then finished items evenly spread over the list.

    Examples
    --------
    >>> items = [ReportItem(str(i), None, "failed" if i < 3 else "done") for i in range(100)]
    >>> pictured(items, 6)
    [0, 1, 2, 3, 51, 99]
    """
    if len(items) <= budget:
        return list(range(len(items)))
    failed = [i for i, item in enumerate(items) if item.status != "done"]
    done = [i for i, item in enumerate(items) if item.status == "done"]
    take_failed = min(len(failed), budget if not done else max(budget // 2, budget - len(done)))
    take_done = min(len(done), budget - take_failed)
    if take_done == 1:
        spread = [done[0]]
    else:
        spread = [done[round(k * (len(done) - 1) / (take_done - 1))] for k in range(take_done)] if take_done else []
    return failed[:take_failed] + spread


@dataclass
class Pictures:
    """An item's before/after thumbnail and histograms, as PNG bytes; or why not."""

    thumbnail: bytes | None = None
    histogram: bytes | None = None
    note: str | None = None


def item_pictures(item: ReportItem, *, size: float = 1.7, dpi: float = 90) -> Pictures:
    """The before (input) and after (output) slice of ``item`` side by side, and
    the histograms of those slices; what can be drawn when one of them cannot be
    read (a failed item's input may be the damaged file), with the reason.

    Examples
    --------
    >>> pictures = item_pictures(ReportItem("scan.tif", "out/scan.ome.zarr", "done"))  # doctest: +SKIP
    >>> pictures.thumbnail[:8]  # doctest: +SKIP
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    from batchproc.io import open_image
    from batchproc.render import histogram_figure, image_plane, plane_histogram, png_bytes, preview_figure

    panels, notes = [], []
    for title, source in (("before", item.input), ("after", item.output if item.status == "done" else None)):
        if source is None:
            continue
        try:
            # Both in NGFF order, the hidden axes at their middle: the same slice
            # whatever order each image stores its axes in.
            panels.append((title, image_plane(open_image(source))))
        except Exception as error:  # a picture must never end the report
            reason = str(error) if isinstance(error, BatchprocError) else f"{type(error).__name__}: {error}"
            notes.append(f"no {title} picture: " + ("the file cannot be read (the error above)" if item.error and reason in item.error else reason))
    pictures = Pictures(note=clean("; ".join(notes)) if notes else None)
    if panels:
        pictures.thumbnail = png_bytes(preview_figure(panels, size=size, dpi=dpi, captions=False))
        series = [(title, *plane_histogram(plane.pixels)) for title, plane in panels]
        pictures.histogram = png_bytes(histogram_figure(series, panel=(2.3, 1.55), dpi=dpi))
    return pictures


def build_report(out: str | Path, *, pictures: int = PICTURES, rows: int = ROWS) -> str:
    """The report page of ``out`` as HTML text (see :func:`write_report`).

    Examples
    --------
    >>> page = build_report("out/edges.ome.zarr")  # doctest: +SKIP
    >>> page.startswith("<!DOCTYPE html>")  # doctest: +SKIP
    True
    """
    if pictures < 0:
        raise BatchprocError(f"--pictures must be 0 or more; got {pictures}.")
    job = load_job(out)
    chosen = pictured(job.items, pictures)
    drawn = {i: item_pictures(job.items[i]) for i in chosen}
    return _page(job, chosen, drawn, rows)


def check_writable(path: str | Path, option: str = "-o") -> Path:
    """Refuse, before any work, a report path that cannot be written: its folder
    missing or not writable, or the path a folder.

    Parameters
    ----------
    path : str or Path
        The HTML file to write.
    option : str
        The option that named it, for the message (``-o``, ``--report``).

    Returns
    -------
    Path

    Examples
    --------
    >>> check_writable("no-such-folder/report.html", "--report")
    Traceback (most recent call last):
    ...
    batchproc.errors.BatchprocError: --report: cannot write the report 'no-such-folder/report.html': the folder 'no-such-folder' does not exist.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise BatchprocError(f"{option}: cannot write the report {str(target)!r}: the folder {str(folder)!r} does not exist.")
    if target.is_dir():
        raise BatchprocError(f"{option}: cannot write the report {str(target)!r}: it is a folder; give a file name such as report.html.")
    if not os.access(folder, os.W_OK):
        raise BatchprocError(f"{option}: cannot write the report {str(target)!r}: the folder {str(folder)!r} is not writable.")
    return target


def write_report(out: str | Path, path: str | Path, *, pictures: int = PICTURES, rows: int = ROWS, option: str = "-o") -> Path:
    """Write the report of ``out`` (an output of ``batchproc run`` or ``batch``) to
    ``path``, a self-contained HTML page.

    Parameters
    ----------
    out : str or Path
        The run's OME-Zarr store, or the batch's ``--out`` folder.
    path : str or Path
        The HTML file to write (replaced if it exists).
    pictures : int
        Items shown with pictures; past it, a sample (the page says how many).
    rows : int
        Items listed in the table at most (failures first); the page says when
        the manifest holds more.
    option : str
        The option that named ``path``, for messages.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    BatchprocError
        ``out`` is not an output of batchproc, or ``path`` cannot be written.

    Examples
    --------
    >>> write_report("batchproc-out", "report.html")  # doctest: +SKIP
    PosixPath('report.html')
    """
    target = check_writable(path, option)
    page = build_report(out, pictures=pictures, rows=rows)
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as error:
        raise BatchprocError(f"{option}: cannot write the report {str(target)!r}: {error.strerror or error}.") from None
    return target


# ------------------------------------------------------------ the page

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.summary { font-size: 1.05em; margin: .3em 0 1em; } .muted { color: #666; }
table { border-collapse: collapse; } td, th { text-align: left; vertical-align: top; padding: .25em .7em .25em 0; }
table.items td, table.items th { border-bottom: 1px solid #eee; } table.items td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { display: inline-block; padding: 0 .5em; border-radius: .8em; font-size: .85em; font-weight: 600; }
.status.done { background: #e3f4e1; color: #1b5e20; } .status.failed { background: #fde4e1; color: #b71c1c; } .status.incomplete { background: #fff3cd; color: #7a5b00; }
.error { color: #b71c1c; white-space: pre-wrap; word-break: break-word; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6em; max-width: 560px; }
.card.failed { border-color: #e57373; } .card h3 { font-size: .95em; margin: 0 0 .3em; word-break: break-all; }
.card img { display: block; max-width: 100%; height: auto; margin-top: .3em; }
ol.steps code, td code { background: #f4f4f4; padding: 0 .3em; border-radius: 3px; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
"""


def _e(text: Any) -> str:
    return html.escape(clean(text), quote=True)


def _png(data: bytes, alt: str, css: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img class="{css}" alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _seconds(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "–"


def _step(step: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={json.dumps(v)}" for k, v in step.items() if k != "op")
    return f"<li><code>{_e(step.get('op', '?'))}</code>{' ' + _e(params) if params else ''}</li>"


def _page(job: Job, chosen: list[int], drawn: dict[int, Pictures], rows: int) -> str:
    from batchproc._version import __version__
    from batchproc.render import display_name

    items = job.items
    failed = [i for i in items if i.status != "done"]
    done = [i for i in items if i.status == "done"]
    info = job.info or {}
    provenance = info.get("provenance") or {}
    name = display_name(job.where)
    parts: list[str] = []
    add = parts.append
    add("<!DOCTYPE html>")
    add('<html lang="en"><head><meta charset="utf-8">')
    # Nothing but this file and its inline pictures may load: the page stays whole when mailed or archived.
    add("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">")
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    add(f"<title>batchproc report: {_e(name)}</title><style>{_STYLE}</style></head><body>")
    add(f"<h1>batchproc report: {_e(name)}</h1>")
    what = f"a batch of {len(items):,} item{'s' * (len(items) != 1)}" if job.kind == "batch" else "one run"
    times = [i.seconds for i in done if isinstance(i.seconds, int | float)]
    timing = f"; {sum(times):,.1f} s of item time, median {statistics.median(times):.2f} s" if times else ""
    add(
        f'<p class="summary">{_e(what)}: <span class="status done">{len(done):,} done</span> '
        f'<span class="status failed">{len(failed):,} failed</span>{_e(timing)}</p>'
    )

    add("<h2>Job</h2><table>")
    rows_job: list[tuple[str, str]] = [
        ("output", f"<code>{_e(job.where)}</code> ({'OME-Zarr store from batchproc run' if job.kind == 'run' else 'folder of batchproc batch'})")
    ]
    if job.kind == "run":
        shape = provenance.get("input_shape")
        detail = f" {tuple(shape)} {provenance.get('input_dtype', '')}" if shape else ""
        rows_job.append(("input", f"<code>{_e(provenance.get('input', '?'))}</code>{_e(detail)}"))
        rows_job.append(("result", _e(f"{tuple(info.get('shape', ()))} {info.get('dtype', '')}, chunks {tuple(info.get('chunks', ()))}")))
    else:
        folders = sorted({str(Path(i.input).parent) for i in items})
        under = f" under {folders[0]}" if len(folders) == 1 else f" in {len(folders)} folders"
        rows_job.append(("inputs", _e(f"{len(items):,} inputs{under} (each listed below)")))
        rows_job.append(("manifest", f"<code>{_e(job.manifest)}</code>"))
        hosts = sorted({i.host for i in items if i.host})
        if hosts:
            rows_job.append(("hosts", _e(", ".join(hosts[:8]) + (f" and {len(hosts) - 8} more" if len(hosts) > 8 else ""))))
        finished = sorted(i.finished for i in items if i.finished)
        if finished:
            rows_job.append(("finished", _e(f"{finished[0]} to {finished[-1]}" if finished[0] != finished[-1] else finished[0])))
    if job.kind == "run":
        rows_job.append(("started", _e(provenance.get("started", "–"))))
        rows_job.append(("finished", _e(info.get("finished", "not finished"))))
        rows_job.append(("time", _e(f"{_seconds(info.get('seconds'))} s")))
    rows_job.append(("batchproc", _e(f"{provenance.get('batchproc') or info.get('version') or '?'} wrote it; this report by {__version__}")))
    add("".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows_job) + "</table>")

    add("<h2>Pipeline</h2>")
    pipeline = provenance.get("pipeline")
    if isinstance(pipeline, dict) and isinstance(pipeline.get("steps"), list):
        add('<ol class="steps">' + "".join(_step(s) for s in pipeline["steps"] if isinstance(s, dict)) + "</ol>")
    else:
        add('<p class="muted">Not recorded: no item finished, so no store holds the pipeline.</p>')
    if job.pipelines > 1:
        add(
            f'<p class="error">The manifest\'s items ran {job.pipelines} different pipelines (the batch was run again with another); the one above is that of the first finished item.</p>'
        )
    add("<details><summary>Provenance recorded in the store" + (" (first finished item)" if job.kind == "batch" else "") + "</summary>")
    add(f"<pre>{_e(json.dumps(info, indent=2, default=str)) if info else 'none'}</pre></details>")

    add("<h2>Pictures</h2>")
    if not chosen:
        add('<p class="muted">No pictures (--pictures 0, or no items).</p>')
    else:
        sample = len(chosen) < len(items)
        how = (
            f"a sample of {len(chosen):,} of the {len(items):,} items: failures first, then finished items spread evenly over the list"
            if sample
            else f"all {len(items):,} item{'s' * (len(items) != 1)}, failures first"
        )
        add(
            f'<p class="muted" id="pictures-note">Showing {_e(how)}. Each thumbnail is one slice (the middle of the axes not shown), before | after, '
            "drawn at the voxel spacing's aspect; the histograms count that slice.</p>"
        )
        add('<div class="gallery">')
        for index in chosen:
            item, pics = items[index], drawn[index]
            add(f'<div class="card {item.status}" data-status="{item.status}"><h3>{_e(display_name(item.input))}</h3>')
            add(f'<span class="status {item.status}">{item.status}</span> <span class="muted">{_seconds(item.seconds)} s</span>')
            if item.error:
                add(f'<div class="error">{_e(item.error)}</div>')
            if pics.thumbnail:
                add(_png(pics.thumbnail, f"before and after: {display_name(item.input)}", "thumb"))
            if pics.histogram:
                add(_png(pics.histogram, f"histograms: {display_name(item.input)}", "hist"))
            if pics.note:
                add(f'<div class="muted">{_e(pics.note)}</div>')
            add("</div>")
        add("</div>")

    add("<h2>Items</h2>")
    listed = items if len(items) <= rows else failed[:rows] + done[: max(0, rows - len(failed))]
    if len(listed) < len(items):
        add(f'<p class="muted">Listing {len(listed):,} of {len(items):,} items (failures first); the manifest holds them all.</p>')
    with_objects = any(i.objects is not None for i in items)
    add(
        '<table class="items"><thead><tr><th>#</th><th>status</th><th>input</th><th>output</th><th>seconds</th>'
        + ("<th>objects</th>" if with_objects else "")
        + "<th>error</th></tr></thead><tbody>"
    )
    for n, item in enumerate(listed, 1):
        objects = f'<td class="num">{item.objects if item.objects is not None else "–"}</td>' if with_objects else ""
        add(
            f'<tr data-status="{item.status}"><td class="num">{n}</td><td><span class="status {item.status}">{item.status}</span></td>'
            f"<td><code>{_e(item.input)}</code></td><td><code>{_e(display_name(item.output)) if item.output else '–'}</code></td>"
            f'<td class="num">{_seconds(item.seconds)}</td>{objects}<td class="error">{_e(item.error or "")}</td></tr>'
        )
    add("</tbody></table>")
    add(f'<p class="muted">Made by batchproc {_e(__version__)}.</p></body></html>')
    return "\n".join(parts)
