"""The one exception type batchproc raises for problems a user can fix."""

from __future__ import annotations


class BatchprocError(ValueError):
    """A problem with the user's input, parameters or files.

    The message is written for the user: it names the parameter, file or step at
    fault, what was expected and what was found. The CLI prints it as one paragraph
    and exits with code 2. It subclasses ``ValueError`` so that code written for
    ``scipy.ndimage`` (which raises ``ValueError`` for bad arguments) keeps working.
    """


class BatchprocTypeError(BatchprocError, TypeError):
    """A :class:`BatchprocError` where scipy raises ``TypeError``."""


class BatchprocRuntimeError(BatchprocError, RuntimeError):
    """A :class:`BatchprocError` where scipy raises ``RuntimeError``."""


def refusal(message: str, like: type[BaseException] | None = None) -> BatchprocError:
    """A BatchprocError with ``message`` that is also ``like`` (the class scipy
    raises for the same mistake), so that code written against scipy that catches
    its exception keeps working."""
    if like is not None and issubclass(like, TypeError):
        return BatchprocTypeError(message)
    if like is not None and issubclass(like, RuntimeError):
        return BatchprocRuntimeError(message)
    return BatchprocError(message)


class SchedulerLost(RuntimeError):
    """The distributed scheduler stopped answering in the middle of a run.

    Not the user's input, so not a :class:`BatchprocError`: the CLI exits with
    code 1, and says that ``--resume`` finishes the output (every chunk written
    before is kept)."""
