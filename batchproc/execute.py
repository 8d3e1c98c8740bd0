"""Where a computation runs (``--scheduler``) and how its progress is shown."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import dask
from dask.callbacks import Callback

from batchproc.errors import BatchprocError

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


@contextlib.contextmanager
def scheduler(name: str | None = None) -> Iterator[str]:
    """Run the enclosed dask computations on ``name`` (default: ``BATCHPROC_SCHEDULER``,
    else ``threads``)."""
    chosen = name or os.environ.get("BATCHPROC_SCHEDULER") or "threads"
    if chosen not in LOCAL_SCHEDULERS:
        if chosen == "local" or chosen.startswith("tcp://") or chosen in ("slurm", "pbs", "sge", "lsf"):
            raise BatchprocError(f"--scheduler {chosen!r}: clusters are not available in this version yet; use one of {', '.join(LOCAL_SCHEDULERS)}.")
        raise BatchprocError(f"--scheduler must be one of {', '.join(LOCAL_SCHEDULERS)}; got {chosen!r}.")
    with dask.config.set(scheduler=chosen):
        yield chosen


class RichProgress(Callback):
    """A rich progress bar over the tasks of one dask computation (local schedulers)."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description
        self.progress: Any = None
        self.task: Any = None

    def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(), transient=False
        )
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=total)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: dict[str, Any], worker_id: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=len(state["finished"]))

    def _finish(self, dsk: Any, state: dict[str, Any], errored: bool) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=len(state["finished"]))
            self.progress.stop()


@contextlib.contextmanager
def progress(description: str, enabled: bool = True) -> Iterator[None]:
    """Show a progress bar for the enclosed computations unless disabled."""
    if not enabled:
        yield
        return
    with RichProgress(description):
        yield
