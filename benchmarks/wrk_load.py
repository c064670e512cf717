"""Drive a server with Debian's ``wrk`` and read its report into numbers.

wrk is C and event driven, so at 32 connections it costs the 2-core box far
less than a Python generator would, and the servers keep more of the CPU.
POST bodies come from a list: a generated wrk Lua script gives each wrk thread
its own run of a bodies file (one JSON body a line: the first half to one of
two threads, the second to the other) and walks it in order, so a code is not
sent twice until a thread has gone through its whole run, and a list that
alternates kinds (bench_verify.py's half-and-half mix) alternates them in every
thread. (Every other line to each thread, as it was, gave one thread all the
first checks and the other all the repeats: two closed loops side by side,
where the faster kind took more than its half.)
how many times a thread started its slice over is reported as ``wraps``
(``0`` is what a caller asking for first checks needs).

wrk is closed loop (a connection sends its next request when the answer comes)
and does not correct for coordinated omission; benchmarks/open_loop.py is the
open-loop companion (Debian has no wrk2).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_LUA = r"""
local counter, threads = 0, {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  local headers = {["Content-Type"] = "application/json"}
  reqs, at, wraps = {}, 0, 0
  local lines = {}
  for line in io.lines(path) do lines[#lines + 1] = line end
  -- a run of the list of its own, in the list's order: a mix stays a mix in every thread
  local first = math.floor(#lines * id / nthreads) + 1
  for i = first, math.floor(#lines * (id + 1) / nthreads) do
    reqs[#reqs + 1] = wrk.format("POST", nil, headers, lines[i])
  end
  if #reqs == 0 then error("thread " .. id .. " has no bodies") end
end
function request()
  at = at + 1
  if at > #reqs then at, wraps = 1, wraps + 1 end
  return reqs[at]
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("wraps") end
  io.write(string.format("WRAPS %d\n", total))
end
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def wrk_available() -> bool:
    """Whether ``wrk`` is on PATH: callers fall back to benchmarks/http_load.py if not."""
    return shutil.which("wrk") is not None


def ensure_wrk() -> bool:
    """Install Debian's wrk if it is missing and apt-get can (root); return availability.

    Quiet and only when missing, so a benchmark run does not touch the system
    on a machine that already has it.
    """
    if wrk_available():
        return True
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return False
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
             "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}  # fmt: skip
    if subprocess.run(install, **quiet).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], **quiet)
        subprocess.run(install, **quiet)
    return wrk_available()


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """Read wrk ``--latency`` output: rps, p50/p99 in ms, socket errors, non-2xx/3xx answers."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not rps:
        raise ValueError(f"wrk printed no Requests/sec:\n{output}")
    pct = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)", output, re.M))
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = re.search(r"^\s+(\d+) requests in ([\d.]+\w+)", output, re.M)
    wraps = re.search(r"^WRAPS (\d+)", output, re.M)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(pct["50"]) if "50" in pct else float("nan"),
        "p99_ms": _ms(pct["99"]) if "99" in pct else float("nan"),
        "errors": sum(int(g) for g in sock.groups()) if sock else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "requests": int(total.group(1)) if total else 0,
        "wraps": int(wraps.group(1)) if wraps else 0,
    }


def run_wrk(
    url: str,
    bodies: list[bytes] | None = None,
    *,
    threads: int = 2,
    connections: int = 32,
    seconds: float = 5.0,
    timeout: float = 5.0,
) -> dict:
    """Run wrk against ``url`` (GET, or POST cycling through ``bodies``); return parse_wrk's dict.

    Each body must be one line (JSON without newlines): the Lua script reads
    the file line by line.
    """
    if not ensure_wrk():
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout))}s", "--latency"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        if bodies:
            if any(b"\n" in b for b in bodies):
                raise ValueError("a body holds a newline; wrk reads one body a line")
            if len(bodies) < threads:
                raise ValueError("fewer bodies than wrk threads")
            body_path, script = Path(tmp, "bodies.txt"), Path(tmp, "bodies.lua")
            body_path.write_bytes(b"\n".join(bodies) + b"\n")
            script.write_text(_LUA)
            args += ["-s", str(script), url, "--", str(body_path), str(threads)]
        else:
            args.append(url)
        out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    return parse_wrk(out.stdout)
