"""Run ``itemseal`` the way a user does: in this process (fast) or as a real process.

``run`` invokes the click root group with click's ``CliRunner``: ``cli.main``
builds its ``Config`` from the environment, so the runner's environment is
the test's (``itemseal_env``) with every other ``ITEMSEAL_*`` variable of
this process removed, as a subprocess given only that environment would see.
An exception the root group does not turn into one line would be a traceback
for the user: ``run`` raises it instead of reporting exit code 1.

``run_process`` runs the installed ``itemseal`` script, for the few smoke
tests of the real entry point (and for commands that must be killed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from cli import main

ITEMSEAL = str(Path(sys.executable).with_name("itemseal"))


@dataclass(frozen=True)
class Ran:
    """What a run of the command left: exit code and both streams (as ``CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


def run(env: dict[str, str], *args: str, stdin: str | None = None, ok: bool = True) -> Ran:
    """Run ``itemseal ARGS`` in this process; with ``ok``, assert it exited 0."""
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ITEMSEAL_")}
    runner = CliRunner(env={**cleared, **env})
    result = runner.invoke(main, list(args), input=stdin, prog_name="itemseal")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    ran = Ran(result.exit_code, result.stdout, result.stderr)
    if ok:
        assert ran.returncode == 0, ran.stderr
    return ran


def run_process(
    env: dict[str, str], *args: str, stdin: str | None = None, ok: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run the installed ``itemseal ARGS`` as a process; with ``ok``, assert it exited 0."""
    proc = subprocess.run(
        [ITEMSEAL, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc
