"""Peak memory of this process, for manifests and benchmarks.

`getrusage().ru_maxrss` is the wrong tool in a child process: Linux carries the high-water mark across
fork and exec, so a worker started from a 1 GB parent reports at least 1 GB whatever it does. `VmHWM` in
/proc/self/status belongs to this process image alone.
"""

from __future__ import annotations


def peak_rss_mb() -> float:
    """This process image's peak resident set in MiB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
