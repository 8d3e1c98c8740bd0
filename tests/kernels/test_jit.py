"""The kernels' numba cache loader (:mod:`batchproc.kernels._jit`): a cached
kernel loads without numba's full set-up, and needs nothing that set-up adds.

``LoadingCache`` readies only numba's runtime before it loads an entry. That is
safe only while every compiled entry calls nothing beyond the runtime's
``NRT_*`` functions, numba's C helpers, the C math functions (both added when
numba's target context is made), the Python C API and libc: the second test reads
the undefined symbols of every cached kernel's object code and holds them to that.
It also leaves an entry's bitcode unparsed until a compilation links the entry
(``LazyLinking``), taking the symbols the entry defines from its object code.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from llvmlite import binding as llvm
from numba.core.compiler_lock import global_compiler_lock

import batchproc.kernels.filters  # noqa: F401  (its kernels' cache files are the ones read)
from batchproc.kernels import _jit, lines, sobel

#: What a cached kernel may call (see the module's text).
ALLOWED = re.compile(
    r"NRT_\w+|numba_\w+|_?Py\w+|_Py_NoneStruct"
    r"|memset|memcpy|memmove|malloc|free|abort"
    r"|(sqrt|floor|ceil|trunc|round|rint|nearbyint|fabs|fmod|pow|exp|exp2|expm1|log|log2|log10|log1p|"
    r"sin|cos|tan|asin|acos|atan|atan2|sinh|cosh|tanh|asinh|acosh|atanh|hypot|copysign|fmin|fmax|erf|erfc|lgamma|tgamma)f?"
    r"|__\w+"  # compiler runtime (__powidf2, __truncdfhf2, ...)
)


def undefined_symbols(object_code: bytes) -> set[str]:
    with global_compiler_lock:  # (LLVM's objects are numba's too: see below)
        found = _jit.symbols(object_code)
    assert found is not None, "not an ELF64 object"
    return {name for name, defined in found if not defined}


def cache_files() -> list[Path]:
    folders = [Path(os.environ["NUMBA_CACHE_DIR"])] if os.environ.get("NUMBA_CACHE_DIR") else []
    folders.append(Path(_jit.__file__).parent / "__pycache__")
    return [f for folder in folders if folder.is_dir() for f in folder.rglob("*.nbc")]


#: A script's first lines: the Sobel kernel on a small block (``out``), and its
#: dispatcher (``d``).
KERNEL_RUN = (
    "x = np.arange(4 * 6 * 6, dtype=np.uint16).reshape(4, 6, 6)\n"
    "f32 = np.float32(0)\n"
    "out = np.empty(x.shape, np.float32)\n"
    "sobel.sobel_magnitude_planes(x, out, 0, 0, 0, 0.0, True, 0, 0, 0, f32, True, f32, 0, f32, f32)\n"
    "d = sobel.sobel_magnitude_planes\n"
)


def twice(script: str, cache: Path) -> list[list[str]]:
    """``script``'s printed words in two fresh processes sharing the numba cache
    ``cache`` (empty at first: the first compiles, the second loads)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    return [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600, check=True).stdout.split() for _ in range(2)]


def test_every_cached_kernel_calls_only_what_the_runtime_provides() -> None:
    # Compile two kernels here, so that the cache holds entries whatever ran before.
    out = np.empty((4, 6, 6), np.float32)
    f32 = np.float32(0)
    sobel.sobel_magnitude_planes(np.zeros((4, 6, 6), np.uint16), out, 0, 0, 0, 0.0, True, 0, 0, 0, f32, True, f32, 0, f32, f32)
    mask = np.empty((4, 6, 6), bool)  # the magnitude's mask (a threshold taken in)
    sobel.sobel_magnitude_planes(np.zeros((4, 6, 6), np.uint16), mask, 0, 0, 0, 0.0, True, 0, 0, 0, f32, True, f32, 1, f32, f32)
    lines.correlate1d(np.zeros((5, 7)), np.ones(3) / 3, 1, np.empty((5, 7)), "reflect", 0.0, 0, 0)
    files = cache_files()
    assert files, "no cached kernel to read"
    strays: dict[str, set[str]] = {}
    for file in files:
        entry = pickle.loads(file.read_bytes())
        kind, (object_code, _bitcode) = entry[0][1], entry[0][2]
        assert kind == "object", file
        stray = {s for s in undefined_symbols(object_code) if not ALLOWED.fullmatch(s)}
        if stray:
            strays[file.name] = stray
    assert not strays, strays


def test_the_symbols_a_cached_kernel_defines_are_its_modules_functions() -> None:
    # LazyLinking takes an entry's defined symbols from its object code instead of
    # its bitcode (which numba parses to find them): every function the module
    # defines must be among them, or numba would not find its entry point.
    out = np.empty((4, 6, 6), np.float32)
    f32 = np.float32(0)
    sobel.sobel_magnitude_planes(np.zeros((4, 6, 6), np.uint16), out, 0, 0, 0, 0.0, True, 0, 0, 0, f32, True, f32, 0, f32, f32)
    files = sorted(cache_files(), key=lambda f: f.stat().st_mtime)[-60:]  # the newest: parsing bitcode takes a while
    assert files, "no cached kernel to read"
    missing: dict[str, set[str]] = {}
    for file in files:
        object_code, bitcode = pickle.loads(file.read_bytes())[0][2]
        # LLVM's context is numba's too: a thread still loading kernels (an earlier
        # test's) must not parse at the same time.
        with global_compiler_lock:
            found = _jit.symbols(object_code)
            module = llvm.parse_bitcode(bitcode)
            wanted = {f.name for f in module.functions if not f.is_declaration}
            del module
        assert found is not None, file
        defined = {name for name, is_defined in found if is_defined}
        if wanted - defined:
            missing[file.name] = wanted - defined
    assert not missing, missing


def test_a_loaded_kernel_links_into_a_later_compilation(tmp_path: Path) -> None:
    # A warm process loads the kernel without parsing its bitcode; a compilation
    # that calls it then links it (parsing the bitcode then), with the same result.
    script = (
        "import numba, numpy as np\n"
        "from batchproc.kernels import sobel\n" + KERNEL_RUN + "libraries = [o.library for o in d.overloads.values()]\n"
        "lazy = [type(lib).__name__ == 'LazyLinking' and lib._shared_module is None for lib in libraries]\n"
        "@numba.njit\n"
        "def calls(x, out, f32):\n"
        "    sobel.sobel_magnitude_planes(x, out, 0, 0, 0, 0.0, True, 0, 0, 0, f32, True, f32, 0, f32, f32)\n"
        "again = np.empty(x.shape, np.float32)\n"
        "calls(x, again, f32)\n"
        "linked = [o.library._shared_module is not None for o in d.overloads.values()]  # the call's own overload\n"
        "print(all(lazy), any(linked), bool(np.array_equal(out, again)), sum(d.stats.cache_hits.values()))\n"
    )
    runs = twice(script, tmp_path)
    assert runs[0] == ["False", "True", "True", "0"], runs[0]  # compiled: numba's own libraries
    assert runs[1][:3] == ["True", "True", "True"] and int(runs[1][3]) >= 1, runs[1]  # loaded lazily, linked when called


def test_a_warm_process_loads_kernels_without_numbas_full_set_up(tmp_path: Path) -> None:
    # Two processes run the same kernel: the first compiles it into an empty
    # cache, the second loads it, and must neither compile nor import what
    # numba's refresh imports (numba.np.linalg, and through it scipy.linalg).
    script = (
        "import sys, numpy as np\n"
        "from batchproc.kernels import sobel\n"
        + KERNEL_RUN
        + "print(float(out.sum()), sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()), 'numba.np.linalg' in sys.modules)\n"
    )
    first, second = twice(script, tmp_path)
    assert first[2] == "1", first  # compiled
    assert second[1:] == ["1", "0", "False"], second  # loaded from the cache, no compiler set up
    assert first[0] == second[0]
    import scipy.ndimage as ndi

    x = np.arange(4 * 6 * 6, dtype=np.uint16).reshape(4, 6, 6)
    total = sum(np.square(ndi.sobel(x, a, output=np.float32)) for a in range(3))
    assert float(second[0]) == float(np.sqrt(total).sum())
