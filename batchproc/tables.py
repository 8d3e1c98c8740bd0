"""Tables of objects (``batchproc measure``): written as CSV, or Parquet with
pyarrow (the ``parquet`` extra)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from batchproc.errors import BatchprocError

FORMATS = ("csv", "parquet")


def csv_text(header: list[str], rows: Any) -> str:
    """``header`` and ``rows`` as CSV text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_table(columns: Mapping[str, np.ndarray], path: Any, format: str = "csv") -> str:  # noqa: A002 - the CLI's name
    """Write ``columns`` (name -> one value per row) to ``path`` as ``format``,
    whole or not at all (a temporary file renamed into place, or one object put
    on an object store)."""
    if format not in FORMATS:
        raise BatchprocError(f"--format must be one of {', '.join(FORMATS)}; got {format!r}.")
    from batchproc.io.remote import RemotePath, local_or_remote

    target = local_or_remote(str(path)) if not isinstance(path, RemotePath) else path
    rows = zip(*(np.asarray(v).tolist() for v in columns.values()), strict=True) if columns else iter(())
    if isinstance(target, RemotePath):
        if format != "csv":
            raise BatchprocError(f"--format {format} is written to local paths only; write csv to {str(target)!r}, or parquet to a local path.")
        target.write_text(csv_text(list(columns), rows))
        return str(target)
    if not target.parent.exists():
        raise BatchprocError(f"cannot write {str(target)!r}: the folder {str(target.parent)!r} does not exist.")
    partial = target.with_name(f".{target.name}.partial")
    if format == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise BatchprocError("--format parquet needs pyarrow: pip install 'batchproc[parquet]'.") from None
        pq.write_table(pa.table({name: np.asarray(values) for name, values in columns.items()}), partial)
    else:
        partial.write_text(csv_text(list(columns), rows))
    partial.replace(target)
    return str(target)
