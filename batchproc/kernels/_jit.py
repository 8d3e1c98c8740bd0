"""numba's ``njit`` as every kernel here is compiled: kept in numba's on-disk
cache, the GIL released while it runs, and loaded from the cache without
readying numba's whole compiler.

Before it loads a cached entry, numba refreshes its target context: it imports
every typing and lowering registry it has (arrays, linalg, which imports
scipy.linalg, random, typed containers, …), which costs a process a good part
of a second. A compiled entry needs none of that, only the symbols it calls:
numba's runtime (``NRT_*``, which :meth:`rtsys.initialize` adds), its C helpers
and the C math functions (both added when the target context is made), the
Python C API and libc. So :class:`LoadingCache` sets up the runtime and loads.
Compiling is unchanged: numba's compiler refreshes the context itself. The
figures are in docs/concepts/startup.md; ``tests/kernels/test_jit.py`` checks
that no cached entry calls anything else.

A cached entry also holds the LLVM bitcode of its module, for linking it into a
later compilation that calls it, and numba parses it as it loads the entry and
walks it for the symbols the entry defines (a third of a load). A process that
only runs the kernels never links them: :class:`LazyLinking` parses the bitcode
when a compilation first asks for it, and the defined symbols come from the
object code's own symbol table (ELF; other formats load as numba loads them).

batchproc imports numba here and nowhere else (the kernels take ``types``,
``overload`` and ``event`` from this module): the first import of numba from two
threads at once can fail ("partially initialized module 'numba.core.event'"), as
numba's modules import each other in cycles, and Python's lock on this one module
makes every other thread wait for the first.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial
from typing import Any

import numba
from llvmlite import binding as ll
from numba import types
from numba.core import event
from numba.core.caching import FunctionCache
from numba.core.codegen import JITCodeLibrary
from numba.core.runtime import rtsys
from numba.extending import overload

__all__ = ["OPTIONS", "LoadingCache", "event", "jit", "overload", "types"]

#: The options of every kernel.
OPTIONS = {"cache": True, "nogil": True}


def symbols(object_code: bytes) -> list[tuple[str, bool]] | None:
    """The named symbols of an ELF64 little-endian object file, each with whether
    the file defines it (a section index other than 0; sections' and the file's
    own names left out); None for another format."""
    if object_code[:4] != b"\x7fELF" or object_code[4:6] != b"\x02\x01":
        return None
    sections = {(s.name() or b"").decode(): s.data() for s in ll.ObjectFileRef.from_data(object_code).sections()}
    table, names = sections.get(".symtab"), sections.get(".strtab")
    if table is None or names is None:
        return None
    found = []
    for offset in range(0, len(table) - 23, 24):  # Elf64_Sym: name u32, info u8, other u8, shndx u16, value u64, size u64
        name, info, _, shndx = struct.unpack_from("<IBBH", table, offset)
        if name and info & 0xF not in (3, 4):  # STT_SECTION, STT_FILE
            found.append((names[name : names.index(b"\0", name)].decode(), shndx != 0))
    return found


class LazyLinking(JITCodeLibrary):
    """A cached entry's code library whose module for linking is parsed from its
    bitcode when a compilation first asks for it (see the module's text)."""

    _bitcode: bytes | None = None

    def _get_module_for_linking(self) -> Any:
        if self._shared_module is None and self._bitcode is not None:
            self._shared_module, self._bitcode = ll.parse_bitcode(self._bitcode), None
        return super()._get_module_for_linking()


def _unserialized(codegen: Any, state: Any) -> Any:
    """numba's ``unserialize_library`` for a cached entry of object code, with its
    bitcode left unparsed (:class:`LazyLinking`); numba's own for anything else."""
    name, kind, data = state
    found = symbols(data[0]) if kind == "object" else None
    if found is None:
        return type(codegen).unserialize_library(codegen, state)
    library = LazyLinking(codegen, name)
    library.enable_object_caching()
    library._set_compiled_object(data[0])
    library._bitcode = data[1]
    library._finalize_final_module()
    codegen._engine._defined_symbols |= {symbol for symbol, defined in found if defined}
    return library


class LoadingCache(FunctionCache):
    """numba's cache of a function's compiled entries, loading an entry with
    only numba's runtime set up, its bitcode parsed only if linked (see the
    module's text)."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        rtsys.initialize(target_context)  # the NRT_* symbols; idempotent
        codegen = target_context.codegen()
        # (numba holds its compiler lock here: no other load or compile sees this)
        ours = "unserialize_library" not in vars(codegen)
        if ours:
            codegen.unserialize_library = partial(_unserialized, codegen)
        try:
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
        finally:
            if ours:
                del codegen.unserialize_library


def jit(function: Callable[..., Any]) -> Any:
    """``function`` compiled with numba (:data:`OPTIONS`), its cached entries
    loaded by a :class:`LoadingCache`."""
    dispatcher = numba.njit(**OPTIONS)(function)
    dispatcher._cache = LoadingCache(dispatcher.py_func)
    return dispatcher
