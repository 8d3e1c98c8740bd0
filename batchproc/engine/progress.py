"""Progress of long work: the bar the CLI asks for (:func:`progress`), fed by the
engine with the blocks it finishes, or by dask's callbacks with the tasks of a
computation on the local schedulers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from dask.callbacks import Callback

_BAR = {"description": ""}


def columns() -> tuple[Any, ...]:
    from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn())


def shown() -> bool:
    """Is a bar asked for (inside :func:`progress`)?"""
    return bool(_BAR["description"])


class RichProgress(Callback):
    """A rich progress bar over the tasks of one dask computation (local schedulers)."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description
        self.progress: Any = None
        self.task: Any = None

    def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
        from rich.progress import Progress

        total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
        self.progress = Progress(*columns(), transient=False)
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=total)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: dict[str, Any], worker_id: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=len(state["finished"]))

    def _finish(self, dsk: Any, state: dict[str, Any], errored: bool) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=len(state["finished"]))
            self.progress.stop()


def is_bar(callback: tuple[Any, ...]) -> bool:
    """Is this dask callback tuple one of :class:`RichProgress`'s?"""
    return any(isinstance(getattr(f, "__self__", None), RichProgress) for f in callback)


@contextlib.contextmanager
def progress(description: str, enabled: bool = True) -> Iterator[None]:
    """Show a progress bar for the enclosed work unless disabled: the blocks the
    engine writes, or the tasks of a dask computation on the local schedulers."""
    if not enabled:
        yield
        return
    _BAR["description"] = description
    try:
        with RichProgress(description):
            yield
    finally:
        _BAR["description"] = ""


@contextlib.contextmanager
def block_bar(total: int, what: str = "") -> Iterator[Callable[[], None]]:
    """A bar counting ``total`` blocks when one is asked for, else nothing: the
    function advances it by one."""
    if not shown() or total <= 0:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(*columns(), transient=False) as bar:
        task = bar.add_task(_BAR["description"] + (f" ({what})" if what else ""), total=total)
        yield lambda: bar.advance(task)
