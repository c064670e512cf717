"""The CPU priority of the embedded store: ahead of the workers that wait on it.

Every request of every worker waits on the one redis-server, and with
``appendfsync always`` each of its turns holds every reply until the turn's
fsync is done. On a small host the workers, the store and whatever else runs
share the cores: a store that is woken after its fsync but queued behind a
busy worker keeps every reply waiting too. ``redis-server`` daemonizes into a
session of its own, so Linux's autogroup scheduling weighs it as its own
group; a nice value on its threads alone would not change that weight.

Measured (issue 15): the verify mix offered open loop on a 2-core host with
the store and two workers, 10-s rounds, the store's nice value switched
between rounds (``/proc/PID/autogroup`` and its threads), p99 in ms at -10
against 0: at 1,050/s 9.1 against 12.3, 11.2 against 16.6, 15.5 against 18.7
(-10 first in each pair); at 1,200/s 12.0 against 11.8, 8.8 against 11.1,
9.7 against 12.3 (0 first). ``benchmarks/bench_verify.py`` reports the
store's nice value with its figures (``store_nice``); the peers it measures
use the same store.

Lowering a nice value needs root or ``CAP_SYS_NICE``; without them the store
keeps the priority it was started with, which is what it had before.
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_NICE = -10
"""The nice value the embedded store's threads and its autogroup are given."""


def favour_store(pid: int, nice: int = STORE_NICE) -> bool:
    """Give process ``pid`` (all its threads, and its autogroup) ``nice``; False if not allowed.

    Only ever lowers: a store started lower already (an operator's choice)
    keeps that value, now for its autogroup too, which its daemonizing reset.
    """
    tasks = Path("/proc", str(pid), "task")
    try:
        nice = min(nice, current_nice(pid))
        # per thread on Linux: setpriority(pid) alone leaves redis's bio threads behind
        thread_ids = [int(task.name) for task in tasks.iterdir()] if tasks.is_dir() else [pid]
        for thread_id in thread_ids:
            os.setpriority(os.PRIO_PROCESS, thread_id, nice)
        autogroup = Path("/proc", str(pid), "autogroup")
        if autogroup.exists():  # a kernel with CONFIG_SCHED_AUTOGROUP
            autogroup.write_text(str(nice))
    except PermissionError:
        return False
    except ProcessLookupError:  # gone already: the caller's next probe says so
        return False
    return True


def current_nice(pid: int) -> int:
    """The nice value of process ``pid`` (its main thread)."""
    return os.getpriority(os.PRIO_PROCESS, pid)
