"""Peak memory of this process, for manifests and benchmarks.

`getrusage().ru_maxrss` is the wrong tool in a child process: Linux carries the high-water mark across
fork and exec, so a worker started from a 1 GB parent reports at least 1 GB whatever it does. `VmHWM` in
/proc/self/status belongs to this process image alone.
"""

from __future__ import annotations

_carried = 0.0  # the peak before the last reset_peak_rss(), so the process's own peak is never lost


def peak_rss_mb(task: bool = False) -> float:
    """This process image's peak resident set in MiB (VmHWM; ru_maxrss where /proc is missing); with
    `task`, the peak since the last `reset_peak_rss()` (a task's own peak in a worker that ran others)."""
    now = _vmhwm_mb()
    return now if task else max(now, _carried)


def reset_peak_rss() -> None:
    """Starts a new peak (Linux: writing 5 to /proc/self/clear_refs resets VmHWM), remembering the old one
    for `peak_rss_mb()`. Where the reset is not possible, task peaks are the process's peaks."""
    global _carried
    _carried = max(_carried, _vmhwm_mb())
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _vmhwm_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
