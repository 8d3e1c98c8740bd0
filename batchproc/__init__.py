"""batchproc: scipy.ndimage, exact, on image data sets too big for one call."""

from __future__ import annotations

from batchproc import ndimage
from batchproc._version import __version__
from batchproc.apply import make_function
from batchproc.errors import BatchprocError
from batchproc.io import Image, open, open_image, read_store_info, write  # noqa: A004
from batchproc.ops import REGISTRY

# The course's operations beyond scipy's names, generated from the same registry.
sobel_magnitude = make_function(REGISTRY["sobel_magnitude"], __name__)
equalize = make_function(REGISTRY["equalize"], __name__)
threshold = make_function(REGISTRY["threshold"], __name__)
expression = make_function(REGISTRY["expression"], __name__)
where = make_function(REGISTRY["where"], __name__)
astype = make_function(REGISTRY["astype"], __name__)

__all__ = [
    "BatchprocError",
    "Image",
    "open",
    "open_image",
    "read_store_info",
    "write",
    "__version__",
    "astype",
    "equalize",
    "expression",
    "ndimage",
    "sobel_magnitude",
    "threshold",
    "where",
]
