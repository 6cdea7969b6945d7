"""ordered_map: the results of map() in order, errors raised where they belong, and every way out
(done, an error, a worker's death, the consumer stopping) leaves no worker process behind."""
import multiprocessing
import os
import signal
import threading
import time

import pytest

from progan_tf.data.ordered_pool import ordered_map
from progan_tf.errors import RunError

_OFFSET = None


def _set_offset(offset):
    global _OFFSET
    _OFFSET = offset


def _shifted(x):
    if x == "fail":
        raise KeyError("item 'fail' is bad")
    return x + _OFFSET, os.getpid()


def _slow_pid(x):
    time.sleep(0.01 if x < 40 else 30)  # from item 40 on, only a kill ends a worker in time
    return os.getpid()


def _items_that_break(n):
    yield from range(n)
    raise OSError("source went away")


def _no_workers_left():
    """No worker process and no feeder thread, within 10 s."""
    busy = lambda: multiprocessing.active_children() or any("feeder" in t.name for t in threading.enumerate())
    deadline = time.time() + 10
    while busy() and time.time() < deadline:
        time.sleep(0.05)
    return not busy()


def test_results_keep_the_input_order_across_workers_and_chunks():
    items = iter(range(203))  # a stream, not a multiple of chunk * workers
    out = list(ordered_map(_shifted, items, 3, _set_offset, (1000,), chunk=4, depth=2))
    assert [x for x, _ in out] == [i + 1000 for i in range(203)]
    pids = [pid for _, pid in out]
    assert len(set(pids)) == 3 and os.getpid() not in pids, "three worker processes shared the work"
    assert [pids[k * 4] for k in range(6)] == [pids[0], pids[4], pids[8]] * 2, "chunk k goes to worker k % n"
    assert _no_workers_left()
    assert list(ordered_map(_shifted, [], 2, _set_offset, (0,))) == []


def test_an_error_in_func_or_in_the_items_is_raised_after_the_results_before_it():
    got = []
    with pytest.raises(KeyError, match="item 'fail' is bad"):
        for x, _ in ordered_map(_shifted, [1, 2, "fail", 4], 2, _set_offset, (0,), chunk=1):
            got.append(x)
    assert got == [1, 2]
    got = []
    with pytest.raises(OSError, match="source went away"):
        for x, _ in ordered_map(_shifted, _items_that_break(10), 2, _set_offset, (0,), chunk=3):
            got.append(x)
    assert got == list(range(10)), "every item before the failure is delivered"
    assert _no_workers_left()


def test_a_killed_worker_is_an_error_not_a_hang():
    results = ordered_map(_slow_pid, range(10_000), 2, _set_offset, (0,), chunk=2)
    victim = next(results)
    os.kill(victim, signal.SIGKILL)
    start = time.time()
    with pytest.raises(RunError, match=r"worker died \(exit code -9\).*use fewer workers$"):  # one line in a CLI
        for _ in results:
            pass
    assert time.time() - start < 30
    assert _no_workers_left()


def test_closing_early_ends_the_workers_at_once():
    results = ordered_map(_slow_pid, range(10_000), 2, _set_offset, (0,), chunk=2)
    pids = {next(results) for _ in range(20)}
    start = time.time()
    results.close()
    assert time.time() - start < 10 and _no_workers_left()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
