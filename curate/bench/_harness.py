"""What every benchmark needs: the best of repeated timings, and a call in a fresh process (so its peak
memory, and the memory of whatever it builds, belong to it alone). Not a benchmark itself (`_` name)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeats: int, warmup: bool = False) -> float:
    """The shortest wall time of `repeats` calls (the machine is shared: the minimum is the least noisy).
    With `warmup`, one untimed call first (workers started, models loaded); with repeats=0 the warm-up
    call's own time is returned."""
    times = []
    if warmup:
        start = time.perf_counter()
        fn()
        if repeats == 0:
            return time.perf_counter() - start
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def in_fresh_process(fn: Callable, *args: Any) -> Any:
    """fn(*args) in a newly spawned interpreter (not forked: nothing of this process is inherited)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()
