"""Scoring on every core without changing a byte.

Two tools, both order-preserving, so that the output is the one a single thread writes:

- :func:`ahead` runs an iterator one item ahead in a thread of its own: reading the next
  chunk (pandas' parser releases the GIL), or scoring it, overlaps with the stage after it.
- :func:`map_parts` runs independent parts (features of the detrending, windows of a detector)
  on a small pool and returns their results in order.

Only work that is the same whichever thread does it and however it is cut goes here: every
result depends on its own row or column alone. An exception reaches the caller as the one a
single thread would have raised first.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_POLL = 0.1  # seconds: how often a blocked producer checks whether its consumer has gone
_DONE = object()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="lstm-rare-event")
        return _pool


def map_parts(func, items: list) -> list:
    """``[func(item) for item in items]``, the items on the pool's threads."""
    if len(items) < 2:
        return [func(item) for item in items]
    return list(_executor().map(func, items))


def parts(n: int, minimum: int) -> list[slice]:
    """``range(n)`` cut into one slice per worker, or one slice when each would hold fewer
    than ``minimum`` items (a thread costs more than it saves there)."""
    k = max(1, min(WORKERS, n // max(minimum, 1)))
    bounds = [n * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def ahead(iterable):
    """The items of ``iterable`` in order, the next one produced in a thread while the caller
    works on this one. Its exception is raised here, after the items before it; a caller that
    stops early (an error, Ctrl-C) stops the thread at its next item."""
    items: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                if not _put(items, (item, None), stop):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            _put(items, (_DONE, exc), stop)
            return
        finally:
            getattr(iterable, "close", lambda: None)()  # a generator's files are closed now, not at exit
        _put(items, (_DONE, None), stop)

    thread = threading.Thread(target=produce, name="lstm-rare-event-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = items.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()


def _put(items: queue.Queue, entry, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            items.put(entry, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False
