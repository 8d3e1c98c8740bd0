"""Output stores on an object store (``s3://``, ``gs://``), where there is no
rename: the writer's promises kept with what an object store does have.

- **One run at a time**: the lock (``store._output_lock``) is an object beside the
  output, created only if absent (a conditional put); one left by a run that is
  gone (a dead process on this host) is taken over.
- **Complete only after the last chunk**: as on a disk, the group's attributes
  say ``complete: false`` until every file is written; each chunk or shard is one
  put, which an object store makes whole or not at all.
- **Resume** lists the array's objects once and writes only the missing files.
- **Overwrite** computes the new store under a hidden prefix beside the output
  (``.NAME.batchproc-XXXXXXXX``); once it is complete, the output is marked
  incomplete (it names its replacement), its old objects are deleted and the new
  ones copied in by the server, the group's metadata last. A run killed during
  that copy leaves the complete replacement in its hidden prefix, and the next
  run on that output finishes the copy first.
"""

from __future__ import annotations

import uuid

from batchproc.errors import BatchprocError
from batchproc.io.remote import RemotePath
from batchproc.io.store import _LOCK, _STAGING, _STAGING_ID, _set_info, read_store_info

#: The documents whose attributes say what a store is: written last when copied.
_ATTRIBUTES = ("zarr.json", ".zattrs")


def staged(target: RemotePath) -> list[RemotePath]:
    """The hidden prefixes where replacements of ``target`` are computed."""
    start = f".{target.name}{_STAGING}"
    return sorted((p for p in target.parent.iterdir() if p.name.startswith(start) and not p.name.endswith(_LOCK)), key=str)


def new_staging(target: RemotePath) -> RemotePath:
    return target.parent / f".{target.name}{_STAGING}{uuid.uuid4().hex[:_STAGING_ID]}"


def existing_files(array: RemotePath) -> set[str]:
    """The keys of the objects under ``array``, relative to it: one listing."""
    return set(array.rglob_keys())


def replace(target: RemotePath, store: RemotePath) -> None:
    """Put the complete ``store`` where ``target`` is (see the module): a kill at
    any moment leaves either the old output, or the complete replacement that
    :func:`mend` puts in place."""
    _set_info(target, complete=False, replaced_by=store.name)
    _finish(target, store)


def _finish(target: RemotePath, store: RemotePath) -> None:
    new = set(store.rglob_keys())
    for key in set(target.rglob_keys()) - new:  # the old output's objects the new one has not
        (target / key).unlink(missing_ok=True)
    last = [key for key in new if key in _ATTRIBUTES]
    for key in sorted(new - set(last)):
        (store / key).copy_to(target / key)
    for key in last:
        (store / key).copy_to(target / key)
    store.remove_tree()


def mend(target: RemotePath) -> None:
    """Finish a replacement a kill cut short (the output names its complete
    replacement); remove replacements left by runs that failed."""
    info = read_store_info(target) or {}
    pending = info.get("replaced_by") if not info.get("complete") else None
    if pending:
        store = target.parent / pending
        if (read_store_info(store) or {}).get("complete"):
            _finish(target, store)


def remove_levels_above(store: RemotePath, above: int) -> None:
    for child in store.iterdir():
        if child.name.isdigit() and int(child.name) > above:
            child.remove_tree()


def check_writable(target: RemotePath) -> None:
    if not target.writable:
        raise BatchprocError(f"output: {str(target)!r} is read-only ({target.scheme}://); write to a local path, s3:// or gs://.")
    if not target.key:
        raise BatchprocError(f"output: {str(target)!r} names a bucket, not a store in it; add a name, such as {str(target / 'out.ome.zarr')!r}.")
