"""Counting numba's compilations in a process (for the tests of compile-once and
of ``batchproc warm``), as Python source: it runs where the count is wanted (a
cluster's worker, a child process), where this test module is not importable."""

COUNT_COMPILES = """
import builtins
from numba.core import event

class Count(event.Listener):
    n = 0
    def on_start(self, _):
        self.n += 1
    def on_end(self, _):
        pass

builtins._batchproc_compiles = Count()
event.register("numba:compile", builtins._batchproc_compiles)
"""

#: An expression for the count so far, once COUNT_COMPILES has run.
COMPILES_SO_FAR = "__import__('builtins')._batchproc_compiles.n"
