"""Reading image data sets lazily; output stores (create, lock, resume, commit)."""

from batchproc.io.readers import Image, open, open_image  # noqa: A004 - batchproc.open is the API
from batchproc.io.store import read_store_info

__all__ = ["Image", "open", "open_image", "read_store_info"]
