"""batchproc: scipy.ndimage, exact, on image data sets too big for one call.

The public names are imported on first use, so that ``import batchproc`` (and the
command line's ``--help``) stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

from batchproc._version import __version__
from batchproc.errors import BatchprocError

#: Public name -> the module that defines it.
_WHERE = {
    "Image": "batchproc.io.readers",
    "open": "batchproc.io.readers",
    "open_image": "batchproc.io.readers",
    "read_store_info": "batchproc.io.store",
    "write": "batchproc.engine.jobs",
    "Pipeline": "batchproc.pipeline",
    "Plan": "batchproc.plan",
    "ndimage": "batchproc.ndimage",
}
#: The course's operations beyond scipy's names, generated from the registry.
_COURSE = ("sobel_magnitude", "equalize", "threshold", "expression", "where", "astype")

__all__ = ["BatchprocError", "__version__", *_WHERE, *_COURSE]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        module = importlib.import_module(_WHERE[name])
        value = module if name == "ndimage" else getattr(module, name)
    elif name in _COURSE:
        from batchproc.apply import make_function
        from batchproc.ops import REGISTRY

        value = make_function(REGISTRY[name], __name__)
    elif name in ("io", "engine", "ops", "kernels", "plan", "pipeline", "batch"):  # subpackages, as a plain import would give them
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'batchproc' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
