"""Reading image data sets lazily and writing OME-Zarr."""

from batchproc.io.readers import Image, open, open_image  # noqa: A004 - batchproc.open is the API
from batchproc.io.writers import read_store_info, write

__all__ = ["Image", "open", "open_image", "read_store_info", "write"]
