"""Work shared among forked processes that never outlive, or hang, the build.

``map_forked(function, items, workers)`` is ``[function(item) for item in items]`` in
``workers`` forked processes. The children inherit ``function`` and ``items`` (a model,
page models: nothing is pickled but an index and the result), and:

- **Ctrl-C goes to the parent only.** SIGINT is blocked across the fork and ignored in
  the children, so a child is never killed by it mid-way through reading the pool's
  task queue (with the queue's lock held: ``Pool.terminate`` then waits forever for
  that lock, the hang of a Ctrl-C while workers start). The parent raises
  ``KeyboardInterrupt`` from its wait, and leaving the pool terminates the children.
- **A child dies with its parent**, even when the parent is killed with ``kill -9``
  (Linux ``PR_SET_PDEATHSIG``), instead of running on for seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from typing import Any, Callable, Sequence

_FORKED: list = []  # what the children inherit: (function, items)
_PR_SET_PDEATHSIG = 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def map_forked(function: Callable[[Any], Any], items: Sequence[Any], workers: int, *,
               initializer: Callable[[], None] | None = None,
               meanwhile: Callable[[], None] | None = None) -> list:
    """``[function(item) for item in items]`` over ``workers`` forked children, each
    running ``initializer`` first; ``meanwhile`` runs in this process as they work."""
    _FORKED[:] = [function, items, initializer, os.getpid()]
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pool = multiprocessing.get_context("fork").Pool(min(workers, len(items)), initializer=_start_child)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a Ctrl-C that came meanwhile arrives now
        with pool:
            pending = pool.map_async(_run, range(len(items)), chunksize=1)
            if meanwhile is not None:
                meanwhile()
            return pending.get()
    finally:
        _FORKED.clear()


def _start_child() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent(_FORKED[3])
    if _FORKED[2] is not None:
        _FORKED[2]()


def _run(index: int) -> Any:
    function, items = _FORKED[0], _FORKED[1]
    return function(items[index])


def _die_with_parent(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # no libc to ask: the child may outlive a killed parent briefly
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)
