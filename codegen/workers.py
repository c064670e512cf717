"""Render a batch's codes in chunks, in worker processes, into shared memory, in order.

HMAC and digit work per code is what limits minting, and one Python process
uses one core. ``ChunkProducer`` forks ``workers`` processes that each rebuild
the ``CodeSigner`` from the secret and render whole chunks (see ``render``)
straight into *slots* of one anonymous shared mapping made before the fork:
no pickling, no copy back; the parent wraps a finished slot as Arrow arrays
without copying and writes it while the workers render the next chunks.

Chunk ``i`` goes to worker ``i % workers`` and each worker works through its
tasks in order, so receiving from the workers round-robin yields the chunks in
print order. A worker ignores SIGINT (the parent decides what an interrupt
means) and exits on its own when the parent goes away, even after SIGKILL.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import signal
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from codegen.exc import WorkerFailed
from codegen.render import TextLayout, render_run
from codegen.signing import CodeSigner

# Rows rendered per task, chosen by measurement (10 M codes, 2 workers): 32 Ki
# rows mint ~4.3 M codes/s against ~4.0 at 64-128 Ki, as a worker's
# temporaries stay in cache; a slot is ~3 MB.
CHUNK_ROWS = 1 << 15
TASKS_PER_WORKER = 2  # one rendering, one queued: a worker never waits for the writer
_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Chunk:
    """Rendered rows ``seq .. seq + rows - 1`` of a batch, living in a shared slot."""

    index: int
    seq: int
    code: np.ndarray
    url: np.ndarray
    slot: int

    @property
    def rows(self) -> int:
        return self.code.shape[0]


class ChunkProducer:
    """Yield the rendered chunks of ``count`` serials from ``first_serial``, in order.

    Use as a context manager; ``release`` each chunk once written so its slot
    can take another. ``held`` is how many chunks the caller keeps at once (the
    chunks of one row group). ``workers=0`` renders in the calling process.
    """

    def __init__(
        self,
        signer: CodeSigner,
        layout: TextLayout,
        first_serial: int,
        count: int,
        *,
        workers: int,
        chunk_rows: int = CHUNK_ROWS,
        held: int = 1,
    ) -> None:
        self.signer, self.layout = signer, layout
        self.first_serial, self.count = first_serial, count
        self.chunk_rows = min(chunk_rows, count)
        self.workers = min(workers, self.chunks_total) if _can_fork() else 0
        # the chunks held for one row group, as many again for the workers to
        # render the next group while this one is written, and their queues
        wanted = 2 * held + max(1, self.workers * TASKS_PER_WORKER)
        self.slots = min(wanted, self.chunks_total)
        self._code_bytes = self.chunk_rows * layout.code_width
        self._slot_bytes = self._code_bytes + self.chunk_rows * layout.url_width
        self._memory: mmap.mmap | None = None
        self._free: deque[int] = deque(range(self.slots))
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._conns: list = []

    @property
    def chunks_total(self) -> int:
        return -(-self.count // self.chunk_rows)

    def __enter__(self) -> ChunkProducer:
        self._memory = mmap.mmap(-1, self.slots * self._slot_bytes)  # MAP_SHARED | MAP_ANONYMOUS
        for slot in range(self.slots):
            self.layout.prefill(*self._views(slot, self.chunk_rows))
        context = multiprocessing.get_context("fork") if self.workers else None
        parent = os.getpid()
        for _ in range(self.workers):
            here, there = context.Pipe()
            proc = context.Process(target=self._serve, args=(there, parent), daemon=True)
            proc.start()
            there.close()
            self._procs.append(proc)
            self._conns.append(here)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass  # that worker is gone already
        for proc in self._procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def release(self, chunk: Chunk) -> None:
        self._free.append(chunk.slot)

    def __iter__(self) -> Iterator[Chunk]:
        pending: deque[tuple[int, int]] = deque()  # (chunk index, slot), oldest first
        dispatched = 0
        for index in range(self.chunks_total):
            while dispatched < self.chunks_total and self._free and (
                len(pending) < self.slots if self.workers else not pending
            ):
                slot = self._free.popleft()
                self._dispatch(dispatched, slot)
                pending.append((dispatched, slot))
                dispatched += 1
            if not pending:
                raise RuntimeError("every slot is held: release chunks once written")
            done, slot = pending.popleft()
            assert done == index
            self._collect(index)
            yield Chunk(index, index * self.chunk_rows, *self._views(slot, self._rows(index)), slot)

    # -- internals

    def _rows(self, index: int) -> int:
        return min(self.chunk_rows, self.count - index * self.chunk_rows)

    def _views(self, slot: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        base = slot * self._slot_bytes
        code = np.frombuffer(
            self._memory, np.uint8, rows * self.layout.code_width, base
        ).reshape(rows, self.layout.code_width)
        url = np.frombuffer(
            self._memory, np.uint8, rows * self.layout.url_width, base + self._code_bytes
        ).reshape(rows, self.layout.url_width)
        return code, url

    def _render(self, index: int, slot: int) -> None:
        serial = self.first_serial + index * self.chunk_rows
        render_run(self.signer, serial, *self._views(slot, self._rows(index)), self.layout)

    def _dispatch(self, index: int, slot: int) -> None:
        if not self.workers:
            self._render(index, slot)
            return
        self._conns[index % self.workers].send((index, slot))

    def _collect(self, index: int) -> None:
        if not self.workers:
            return
        worker = index % self.workers
        try:
            kind, detail = self._conns[worker].recv()
        except (EOFError, OSError):
            code = self._procs[worker].exitcode
            raise WorkerFailed(f"mint worker {worker} died (exit code {code})") from None
        if kind != "ok":
            raise WorkerFailed(f"mint worker {worker} failed:\n{detail}")

    def _serve(self, conn, parent: int) -> None:
        """Worker loop: render the chunks the parent sends until told to stop."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the CLI's parent turns it into Ctrl-C
        signer = self.signer  # rebuilt from the secret: no OpenSSL state crosses the fork
        self.signer = CodeSigner(signer.secret, signer.key_id, signer.profile)
        while True:
            if not conn.poll(_POLL_SECONDS):
                if os.getppid() != parent:
                    return  # the parent died without telling us
                continue
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return
            if task is None:
                return
            try:
                self._render(*task)
                conn.send(("ok", None))
            except Exception:  # report it; the parent raises WorkerFailed
                conn.send(("error", traceback.format_exc()))


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()
