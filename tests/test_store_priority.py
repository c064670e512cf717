"""The embedded store's CPU priority, read back from the kernel for real processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers.processes import dead_pid

from codegen.exc import EmbeddedStoreError
from codegen.store.embedded import EmbeddedRedis
from codegen.store.priority import STORE_NICE, current_nice, favour_store

REPO = Path(__file__).resolve().parent.parent
PRIVILEGED = os.geteuid() == 0
needs_privilege = pytest.mark.skipif(
    not PRIVILEGED, reason="LOUD SKIP: lowering a nice value needs root or CAP_SYS_NICE"
)


def thread_nices(pid: int) -> set[int]:
    """The nice value of every thread of ``pid``."""
    return {psutil.Process(thread.id).nice() for thread in psutil.Process(pid).threads()}


def autogroup_nice(pid: int) -> int | None:
    path = Path(f"/proc/{pid}/autogroup")
    return int(path.read_text().split()[-1]) if path.exists() else None


@contextlib.contextmanager
def sleeper(**kw) -> Iterator[subprocess.Popen]:
    """A process in a session of its own: its autogroup is not the test runner's."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True, **kw
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@needs_privilege
def test_the_embedded_store_runs_ahead_of_its_callers(short_home: Path) -> None:
    store = EmbeddedRedis(short_home)
    try:
        store.start()
        status = store.status()
        expected = min(STORE_NICE, os.getpriority(os.PRIO_PROCESS, 0))  # it inherits ours
        assert status.nice == expected
        assert thread_nices(status.pid) == {expected}  # bio threads too, not just main
        assert autogroup_nice(status.pid) in (expected, None)
    finally:
        with contextlib.suppress(EmbeddedStoreError):
            store.stop()


@needs_privilege
def test_a_store_already_ahead_is_left_where_it_is() -> None:
    with sleeper(preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, -15)) as proc:
        assert favour_store(proc.pid) is True
        assert thread_nices(proc.pid) == {-15}
        assert autogroup_nice(proc.pid) in (-15, None)


def test_without_the_privilege_nothing_changes() -> None:
    """As an ordinary user the store keeps its priority; no error reaches the caller."""
    ask = [sys.executable, "-c", "from codegen.store.priority import favour_store as f;"
           " import sys; print(f(int(sys.argv[1])))"]
    if PRIVILEGED:  # the same question without CAP_SYS_NICE (util-linux's setpriv)
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("LOUD SKIP: running as root and no setpriv to drop CAP_SYS_NICE")
        ask = [setpriv, "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", *ask]
    with sleeper() as proc:
        asked = subprocess.run(
            [*ask, str(proc.pid)], cwd=REPO, capture_output=True, text=True, timeout=30
        )
        assert (asked.returncode, asked.stdout.strip(), asked.stderr) == (0, "False", "")
        assert thread_nices(proc.pid) == {os.getpriority(os.PRIO_PROCESS, 0)}  # as inherited
        assert autogroup_nice(proc.pid) in (0, None)


def test_a_process_that_is_gone_is_not_an_error() -> None:
    gone = dead_pid()
    with pytest.raises(ProcessLookupError):
        current_nice(gone)
    assert favour_store(gone) is False
