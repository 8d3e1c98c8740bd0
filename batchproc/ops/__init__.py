"""The operation registry. Importing this package declares every operation."""

from batchproc.ops import distance, filters, label, measure, objects, pointwise  # noqa: F401  (declarations)
from batchproc.ops._checks import Context
from batchproc.ops._registry import REGISTRY, Operation, Param, get

__all__ = ["REGISTRY", "Context", "Operation", "Param", "get", "names"]


def names() -> list[str]:
    """Every operation's name, sorted."""
    return sorted(REGISTRY)
