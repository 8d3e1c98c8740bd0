"""``scipy.ndimage`` for dask arrays: the same names, signatures, defaults and results.

Every function here is generated from its declaration in :mod:`batchproc.ops`;
each takes a dask (or numpy) array and returns a lazy dask array whose computed
value is bit-for-bit ``scipy.ndimage``'s on the whole array, whatever the chunks.
``histogram`` computes and returns numpy counts, as scipy does.
"""

from __future__ import annotations

from batchproc.apply import make_function
from batchproc.ops import REGISTRY

__all__ = sorted(name for name, op in REGISTRY.items() if op.scipy)

for _name in __all__:
    globals()[_name] = make_function(REGISTRY[_name], __name__)
del _name
