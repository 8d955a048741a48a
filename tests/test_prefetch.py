"""The read-ahead thread of flows(): order, errors and early stops."""
from __future__ import annotations

import threading
import time

import pytest

from flowkit._prefetch import prefetch


def test_items_arrive_in_order_and_complete():
    assert list(prefetch(iter(range(1000)), depth=2)) == list(range(1000))
    assert list(prefetch(iter([]))) == []


def test_a_producer_error_is_raised_in_the_consumer_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("bad record at offset 40")

    got = []
    with pytest.raises(ValueError, match="offset 40"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_stopping_early_ends_the_producer_and_bounds_read_ahead():
    produced = []

    def items():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    time.sleep(0.2)
    assert len(produced) <= 4  # the consumer holds 1, the queue 2, the producer waits with 1
    it.close()
    time.sleep(0.3)
    assert len(produced) <= 5
    assert not any(t.name == "flowkit-prefetch" and t.is_alive() for t in threading.enumerate())
