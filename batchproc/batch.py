"""One pipeline over many inputs (``batchproc batch``), with a manifest that makes
re-running the same command finish the job.

Each input becomes one item: one OME-Zarr store under the output folder. Items
run in parallel on the chosen scheduler (a thread or process pool locally, tasks
on a distributed cluster), each computing its own blocks in its own task. The
manifest (``batchproc-manifest.jsonl`` in the output folder) gets one JSON line
per finished item, appended and flushed as it finishes, so a killed batch keeps
the record of everything done before the kill. The last line for an input is its
state: re-running skips items that are ``done`` with an unchanged input, an
unchanged pipeline and a complete store, and runs the rest again.
"""

from __future__ import annotations

import concurrent.futures
import glob as globlib
import hashlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchproc.errors import BatchprocError
from batchproc.io.readers import input_stamp, is_zarr_store, natural_key
from batchproc.io.remote import RemotePath, is_url, local_or_remote
from batchproc.io.store import longest_output_name, read_store_info
from batchproc.pipeline import Pipeline

MANIFEST = "batchproc-manifest.jsonl"
_SUFFIXES = (".ome.zarr", ".ome.tiff", ".ome.tif", ".nii.gz", ".zarr", ".tiff", ".tif", ".png", ".jpeg", ".jpg", ".dcm", ".nii", ".h5", ".hdf5")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Item:
    """One input and the store it becomes."""

    input: str
    output: Path | RemotePath


@dataclass
class Summary:
    """What a batch did: items done now, skipped as already done, and failed."""

    done: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Item] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    manifest: Path | RemotePath | None = None
    objects: str | None = None  # the combined table of objects (batch --measure)

    @property
    def items_per_second(self) -> float:
        return len(self.done) / self.seconds if self.seconds > 0 else 0.0


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def collect_inputs(patterns: Sequence[str], list_file: str | Path | None = None, exclude: str | Path | None = None) -> list[str]:
    """The inputs named by ``patterns`` (files, globs, folders) and by ``list_file``
    (one path per line; ``#`` starts a comment; relative paths are taken from the
    list file's folder), in natural order, each once. On an object store, a glob
    matches the objects under its prefix and a prefix stands for what is right
    under it.

    A folder stands for its entries (files and sub-folders, hidden ones left out),
    except a zarr store, which is one input; ``exclude`` (the output folder) is never
    an input. HDF5 datasets (``file.h5:/path``) pass through as given.
    """
    given: list[str] = list(patterns)
    if list_file is not None:
        source = Path(list_file)
        try:
            lines = source.read_text().splitlines()
        except OSError as error:
            raise BatchprocError(f"--list: cannot read {str(source)!r}: {error.strerror or error}.") from None
        for line in lines:
            entry = line.split("#", 1)[0].strip()
            if entry:
                given.append(entry if os.path.isabs(entry) or ":/" in entry or is_url(entry) else str(source.parent / entry))
    if not given:
        raise BatchprocError("batch: give at least one input (a file, a glob, a folder) or --list FILE.")
    found: list[str] = []
    for text in given:
        where = local_or_remote(text) if is_url(text) else None
        if isinstance(where, RemotePath):
            found.extend(_remote_inputs(where))
            continue
        text = str(where) if where is not None else text
        if ":/" in text and Path(text.split(":/", 1)[0]).is_file():
            found.append(text)
        elif _is_glob(text):
            hits = sorted(globlib.glob(text), key=natural_key)
            if not hits:
                raise BatchprocError(f"batch: the pattern {text!r} matches no file.")
            found.extend(hits)
        elif not os.path.exists(text):
            raise BatchprocError(f"batch: the input {text!r} does not exist.")
        elif Path(text).is_dir() and not is_zarr_store(Path(text)):
            entries = sorted((str(p) for p in Path(text).iterdir() if not p.name.startswith(".")), key=natural_key)
            if not entries:
                raise BatchprocError(f"batch: the folder {text!r} is empty.")
            found.extend(entries)
        else:
            found.append(text)
    excluded = local_or_remote(str(exclude)) if exclude is not None else None
    skip = excluded.resolve() if isinstance(excluded, Path) else None
    unique: dict[str, str] = {}
    for text in found:
        if is_url(text):
            if excluded is None or not (text == str(excluded) or text.startswith(str(excluded) + "/")):
                unique.setdefault(text, text)
            continue
        key = os.path.abspath(text)
        if skip is not None and (Path(key) == skip or skip in Path(key).parents):
            continue
        unique.setdefault(key, text)
    return list(unique.values())


def _remote_inputs(where: RemotePath) -> list[str]:
    """The inputs an object store URL names: the objects a glob matches (under
    the prefix before its first wildcard), what is right under a prefix (a zarr
    store standing for itself), or the object itself."""
    from batchproc.io.chunkfiles import read_metadata

    text = str(where)
    if _is_glob(where.key):
        hits = sorted((str(p) for p in where.matches()), key=natural_key)
        if not hits:
            raise BatchprocError(f"batch: the pattern {text!r} matches no object.")
        return hits
    if where.suffix.lower() in (".tif", ".tiff", ".png", ".jpg", ".jpeg") or read_metadata(where) is not None:
        return [text]
    entries = sorted((str(p) for p in where.iterdir() if not p.name.startswith(".")), key=natural_key) if where.writable else []
    if not entries:
        raise BatchprocError(f"batch: {text!r} does not exist, or holds nothing.")
    return entries


def _stem(text: str) -> str:
    path, _, dataset = text.partition(":/") if not is_url(text) else (text, "", "")
    name = Path(path.rstrip("/")).name
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    if dataset:
        name = f"{name}_{dataset}"
    return _UNSAFE.sub("_", name).strip("._") or "item"


def plan_items(inputs: Sequence[str], out: Path | RemotePath) -> list[Item]:
    """One store per input, ``OUT/<name>.ome.zarr``, where ``name`` is the input's
    file name made safe (letters, digits, ``._-``); names that would collide (also
    by case) get a short hash of the input's absolute path, and so do names too
    long for ``out``, cut to fit (the user cannot rename a batch's outputs). Never
    outside ``out``."""
    stems = [_stem(text) for text in inputs]
    counts: dict[str, int] = {}
    for stem in stems:
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    # The stems are ASCII: bytes = characters (an object's name: S3 keys hold 1,024 bytes).
    room = (longest_output_name(out) if isinstance(out, Path) else 200) - len(".ome.zarr")
    items = []
    for text, stem in zip(inputs, stems, strict=True):
        if counts[stem.lower()] > 1 or len(stem) > room:
            digest = hashlib.sha256((text if is_url(text) else os.path.abspath(text)).encode()).hexdigest()[:8]
            stem = f"{stem[: max(1, room - len(digest) - 1)]}-{digest}"
        items.append(Item(text, out / f"{stem}.ome.zarr"))
    return items


class Manifest:
    """The JSON-lines record of a batch: one line per finished item, appended.

    On an object store, where nothing is appended to, the object is written again
    whole at most every :attr:`every` seconds and at the end (:meth:`flush`): a
    record a kill loses is only an item run again, which finds its store complete."""

    every = 5.0

    def __init__(self, path: Path | RemotePath) -> None:
        self.path = path
        self._lines: list[str] | None = None
        self._written = 0.0

    def load(self) -> dict[str, dict[str, Any]]:
        """The last record of each input. A torn last line (a kill mid-write) is ignored."""
        state: dict[str, dict[str, Any]] = {}
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return state
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "input" in record:
                state[record["input"]] = record
        return state

    def append(self, record: dict[str, Any]) -> None:
        if isinstance(self.path, RemotePath):
            if self._lines is None:
                try:
                    self._lines = self.path.read_text().splitlines()
                except FileNotFoundError:
                    self._lines = []
            self._lines.append(json.dumps(record))
            if time.monotonic() - self._written >= self.every:
                self.flush()
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def flush(self) -> None:
        """Write what an object store's manifest holds so far."""
        if isinstance(self.path, RemotePath) and self._lines is not None:
            self.path.write_text("".join(line + "\n" for line in self._lines))
            self._written = time.monotonic()


def process_item(document: dict[str, Any], item: Item, chunks: Any, write_options: dict[str, Any]) -> dict[str, Any]:
    """Run the pipeline on one item; never raises: a failure becomes the record."""
    import socket

    from batchproc.engine import in_this_thread

    started = time.time()
    record: dict[str, Any] = {"input": item.input, "output": str(item.output), **input_stamp(item.input), "host": socket.gethostname()}
    try:
        pipeline = Pipeline.from_dict(document)
        record["pipeline"] = pipeline.fingerprint()
        # Items are the unit of parallelism: inside one, blocks run in order.
        options = dict(write_options)
        measure = options.pop("measure", False)
        with in_this_thread():
            pipeline.run(item.input, item.output, chunks=chunks, **options)
            if measure:
                record["objects"] = measure_item(item)
        record["status"] = "done"
    except BatchprocError as error:
        record.update(status="failed", error=str(error))
    except Exception as error:  # one bad file must not end the batch
        record.update(status="failed", error=f"{type(error).__name__}: {error}")
    record["seconds"] = round(time.time() - started, 3)
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record


#: The table of objects beside an item's label image (``batch --measure``), and all of them together.
OBJECTS = ".objects.csv"
ALL_OBJECTS = "objects.csv"


def table_of(item: Item) -> Path | RemotePath:
    name = item.output.name
    return item.output.with_name((name[: -len(".ome.zarr")] if name.endswith(".ome.zarr") else name) + OBJECTS)


def measure_item(item: Item) -> int:
    """The item's objects (its output, a label image) measured on its input, as a
    table beside the output; how many."""
    from batchproc.engine.jobs import measure_objects
    from batchproc.tables import write_table

    columns = measure_objects(item.input, str(item.output))
    write_table(columns, table_of(item))
    return len(columns["label"])


def combine_tables(items: Sequence[Item], out: Path | RemotePath) -> str | None:
    """One table of every item's objects, the input's name first in each row."""
    import csv
    import io

    header: list[str] | None = None
    rows: list[list[str]] = []
    for item in items:
        try:
            text = table_of(item).read_text()
        except (OSError, BatchprocError):
            continue
        found = list(csv.reader(io.StringIO(text)))
        if not found:
            continue
        header = header or ["input", *found[0]]
        rows += [[item.input, *row] for row in found[1:]]
    if header is None:
        return None
    from batchproc.tables import csv_text

    target = out / ALL_OBJECTS
    target.write_text(csv_text(header, rows))
    return str(target)


def _is_done(record: dict[str, Any] | None, item: Item, fingerprint: str) -> bool:
    if record is None or record.get("status") != "done" or record.get("pipeline") != fingerprint:
        return False
    if {k: record[k] for k in ("bytes", "mtime_ns", "etag") if k in record} != input_stamp(item.input):
        return False
    info = read_store_info(item.output)
    return bool(info and info.get("complete"))


def run_batch(
    pipeline: Pipeline,
    inputs: Sequence[str],
    out: str | Path,
    *,
    chunks: Any = None,
    overwrite: bool = False,
    workers: int | None = None,
    on_item: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    **write_options: Any,
) -> Summary:
    """Run ``pipeline`` on each input, writing ``OUT/<name>.ome.zarr`` and the manifest.

    Parameters
    ----------
    pipeline : Pipeline
    inputs : sequence of str
        From :func:`collect_inputs`.
    out : path
        The output folder (created if missing).
    chunks : optional
        Block shape for reading each input.
    overwrite : bool
        Replace stores of items that are not done (stores batchproc wrote only).
        Without it an unfinished store is resumed: only its missing chunks are written.
    workers : int, optional
        Items at once on the local schedulers (default: one per core).
    on_item : callable, optional
        Called with each finished item's record (for progress display).
    on_start : callable, optional
        Called with (items to run, items skipped) before anything runs.

    Returns
    -------
    Summary
    """
    import dask

    target = local_or_remote(str(out)) if not isinstance(out, RemotePath) else out
    if isinstance(target, RemotePath):
        from batchproc.io.remote_store import check_writable

        check_writable(target)
    else:
        if target.exists() and not target.is_dir():
            raise BatchprocError(f"--out: {str(target)!r} exists and is not a folder.")
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BatchprocError(f"--out: cannot create the folder {str(target)!r}: {error.strerror or error}.") from None
        if not os.access(target, os.W_OK):
            raise BatchprocError(f"--out: the folder {str(target)!r} is not writable.")
    manifest = Manifest(target / MANIFEST)
    state = manifest.load()
    fingerprint = pipeline.fingerprint()
    summary = Summary(manifest=manifest.path)
    todo: list[Item] = []
    for item in plan_items(inputs, target):
        (summary.skipped if _is_done(state.get(item.input), item, fingerprint) else todo).append(item)
    if on_start is not None:
        on_start(len(todo), len(summary.skipped))
    document = pipeline.to_dict()
    options = dict(write_options, overwrite=overwrite, resume=not overwrite)
    started = time.time()
    try:
        for record in _run_items(document, todo, chunks, options, dask.config.get("scheduler", None), workers):
            manifest.append(record)
            (summary.done if record["status"] == "done" else summary.failed).append(record)
            if on_item is not None:
                on_item(record)
    finally:
        manifest.flush()
    if options.get("measure"):
        finished = {r["input"] for r in summary.done} | {i.input for i in summary.skipped}
        summary.objects = combine_tables([i for i in plan_items(inputs, target) if i.input in finished], target)
    summary.seconds = time.time() - started
    return summary


def _run_items(
    document: dict[str, Any], items: list[Item], chunks: Any, options: dict[str, Any], scheduler: Any, workers: int | None
) -> Iterable[dict[str, Any]]:
    """Records of ``items`` as they finish, on the current dask scheduler."""
    if not items:
        return
    if scheduler is not None and not isinstance(scheduler, str) and hasattr(scheduler, "submit"):
        from distributed import as_completed

        futures = [scheduler.submit(process_item, document, item, chunks, options, pure=False) for item in items]
        for future in as_completed(futures):
            yield future.result()
        return
    if scheduler == "synchronous":
        for item in items:
            yield process_item(document, item, chunks, options)
        return
    count = max(1, min(workers or os.cpu_count() or 1, len(items)))
    if scheduler == "processes":
        pool: concurrent.futures.Executor = concurrent.futures.ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = concurrent.futures.ThreadPoolExecutor(count)
    with pool:
        pending = [pool.submit(process_item, document, item, chunks, options) for item in items]
        for future in concurrent.futures.as_completed(pending):
            yield future.result()
