"""Worker process pools whose workers never outlive the process that started them.

A ``ProcessPoolExecutor`` worker keeps running queued tasks after its parent is killed with
SIGKILL (no clean-up can run then), writing files for minutes and holding hundreds of MB.
Each worker started here asks the kernel for SIGKILL when its parent dies (Linux), and also
watches its parent id (every platform), so it ends within a second of the parent.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1   # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Pool initializer: end this worker when ``parent`` (the pool's owner) is gone."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):   # no prctl (unusual libc): the watcher below still works
            pass
    if os.getppid() != parent:   # the parent died before the request above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="kptool-parent-watch", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A ``spawn`` process pool (forking a process that runs torch/numba thread pools can hang)
    whose workers die with this process."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))
