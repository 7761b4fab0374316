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


def best_in_rounds(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """The shortest wall time of each of `fns` over `repeats` rounds, each round calling every one in turn
    after an untimed warm-up round: a load that comes and goes on the shared machine then falls on all of
    them alike, instead of on whichever was timed while it lasted (so their ratios are comparable). A fn
    with untimed setup of its own (e.g. starting Ray) returns the seconds of its timed part (a float)."""
    best = {name: float("inf") for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            took = fn()
            took = took if isinstance(took, float) else time.perf_counter() - start
            if round_ or repeats == 0:  # with repeats=0 the warm-up round's own times are returned
                best[name] = min(best[name], took)
    return best


def in_fresh_process(fn: Callable, *args: Any) -> Any:
    """fn(*args) in a newly spawned interpreter (not forked: nothing of this process is inherited)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()
