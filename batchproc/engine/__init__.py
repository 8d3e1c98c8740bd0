"""The engine: where work runs and the one runner that computes plans there.

- :mod:`~batchproc.engine.schedulers`: ``--scheduler`` set-up (threads, processes,
  LocalCluster, ``tcp://``, job queues).
- :mod:`~batchproc.engine.runner`: block tasks in windows on any scheduler; dask
  arrays that do not come from a plan.
- :mod:`~batchproc.engine.jobs`: a plan or a dask array into an output store.
- :mod:`~batchproc.engine.layers`: dask graphs with input reads held back.
- :mod:`~batchproc.engine.progress`: progress bars.
"""

from batchproc.engine.progress import progress
from batchproc.engine.runner import collector_frozen, compute, compute_blocks, in_this_thread, run_plan
from batchproc.engine.schedulers import JOBQUEUE, Session, job_script, scheduler, scheduler_names

__all__ = [
    "JOBQUEUE",
    "Session",
    "collector_frozen",
    "compute",
    "compute_blocks",
    "in_this_thread",
    "job_script",
    "progress",
    "run_plan",
    "scheduler",
    "scheduler_names",
]
