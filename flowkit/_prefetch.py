"""Run an iterator one or two items ahead in a background thread.

Why: reading, framing and decoding the next chunk (C, GIL released) then overlaps
the flow state machine on the current one, so a capture keeps both cores busy. The
queue is bounded, so memory stays at ``depth`` items in flight whatever the input.
Errors raised by the producer are raised again in the consumer, unchanged.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Yield ``items`` in order while a thread produces up to ``depth`` items ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failed(error))
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="flowkit-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()  # the consumer stopped early (or failed): let the producer end at its next item
        worker.join(timeout=1.0)
