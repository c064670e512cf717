"""The worker's pipe on Redis Cluster: one ``RedisPipe`` per master, commands routed by slot.

Callers keep handing over packed commands (``codegen/store/wire.py``'s
``Wire``), so the verify, rate-limit and credit paths run unchanged: this
pipe reads each command's first key back out of the RESP it was packed in
(``EVALSHA sha numkeys key...``: the first of KEYS; any other command: its
first argument), which is all routing needs, because every script's KEYS
share one hash tag (``codegen/store/keyspace.py``). A call's commands are split by
master, sent to all of them before waiting on any, and the replies put back
in the order given.

A ``MOVED`` or ``ASK`` reply means the command did not run, so exactly those
commands are sent again (after re-reading the slot map, or with ``ASKING``
to the node named); everything else, errors included, is the caller's reply.
Commands without a key (``PING``, ``SCRIPT LOAD``) go to every master: the
reply is the first error, else the first master's reply.

Why not redis-py's ``RedisCluster`` pipeline: it would turn the raw
replies back into redis-py's parsed ones (and its errors into exceptions),
and lose the per-worker coalescing that the verify bar rests on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from codegen.exc import StoreError
from codegen.store.pipe import RedisPipe
from codegen.store.wire import pack

SLOTS = 16384
MAX_REDIRECTS = 5
_SCRIPT_CALLS = (b"EVALSHA", b"EVAL", b"evalsha", b"eval")
_ASKING = pack(b"ASKING")
Address = tuple[str, int]


def split_commands(payload: bytes, count: int) -> list[tuple[bytes, bytes | None]]:
    """Cut ``count`` packed commands apart; return each with its routing key (or None).

    Walks the ``$len`` headers only, so an argument is never copied.
    """
    out: list[tuple[bytes, bytes | None]] = []
    pos = 0
    for _ in range(count):
        start = pos
        end = payload.index(b"\r\n", pos)
        argc = int(payload[pos + 1 : end])
        pos = end + 2
        head: list[bytes] = []
        for i in range(argc):
            end = payload.index(b"\r\n", pos)
            size = int(payload[pos + 1 : end])
            pos = end + 2
            if i < 4:
                head.append(payload[pos : pos + size])
            pos += size + 2
        out.append((payload[start:pos], routing_key(head)))
    if pos != len(payload):
        raise ValueError(f"payload holds more than {count} commands")
    return out


def routing_key(head: list[bytes]) -> bytes | None:
    """The key a command's slot follows, from its first four arguments; None if keyless."""
    if head and head[0] in _SCRIPT_CALLS:
        return head[3] if len(head) > 3 and int(head[2]) > 0 else None
    if head and head[0].upper() in (b"PING", b"SCRIPT", b"INFO", b"ASKING", b"ECHO"):
        return None
    return head[1] if len(head) > 1 else None


def _redirect(reply: object) -> tuple[str, int, Address] | None:
    """``("MOVED"|"ASK", slot, address)`` if ``reply`` redirects, else None."""
    if not isinstance(reply, hiredis.ReplyError):
        return None
    kind, _, rest = str(reply).partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, where = rest.partition(" ")
    host, _, port = where.rpartition(":")
    return kind, int(slot), (host, int(port))


class ClusterPipe:
    """A ``Wire`` over one coalescing ``RedisPipe`` per cluster master."""

    def __init__(
        self,
        startup: Iterable[Address],
        *,
        timeout: float = 5.0,
        credentials: dict[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        self.startup = list(startup)
        self.timeout = timeout
        self._credentials = credentials or {}
        self._scheme = "rediss" if tls else "redis"
        self._lock = threading.Lock()
        self._pipes: dict[Address, RedisPipe] = {}
        self._slots: list[Address] = []
        self._masters: list[Address] = []

    @classmethod
    def for_client(cls, client: RedisCluster, *, timeout: float = 5.0) -> ClusterPipe:
        """Return a pipe to the masters ``client`` knows, with its credentials."""
        primaries = client.get_primaries()
        pool = client.get_redis_connection(primaries[0]).connection_pool
        kw = pool.connection_kwargs
        credentials = {k: kw[k] for k in ("username", "password") if kw.get(k)}
        tls = issubclass(pool.connection_class, redis.SSLConnection)
        return cls([(n.host, n.port) for n in primaries], timeout=timeout,
                   credentials=credentials, tls=tls)

    # -- the Wire protocol -------------------------------------------------------------

    def call(self, payload: bytes, count: int = 1) -> list:
        """Send ``count`` packed commands, each to its slot's master; replies in order."""
        commands = split_commands(payload, count)
        replies: list = [None] * count
        todo = list(range(count))
        asking: dict[int, Address] = {}
        for _ in range(MAX_REDIRECTS + 1):
            redirected = self._round(commands, todo, asking, replies)
            if not redirected:
                return replies
            todo, asking = redirected, {i: asking[i] for i in redirected if i in asking}
        raise StoreError(f"redis cluster still redirecting after {MAX_REDIRECTS} tries")

    def post(self, payload: bytes, count: int = 1) -> None:
        """Send without waiting for replies (a redirect is lost, as any reply is)."""
        commands = split_commands(payload, count)
        for address, indexes in self._groups(commands, range(count), {}).items():
            self._pipe(address).submit(b"".join(commands[i][0] for i in indexes), len(indexes))

    def close(self) -> None:
        with self._lock:
            pipes, self._pipes = list(self._pipes.values()), {}
        for pipe in pipes:
            pipe.close()

    # -- internals ----------------------------------------------------------------------

    def _round(
        self,
        commands: list[tuple[bytes, bytes | None]],
        todo: list[int],
        asking: dict[int, Address],
        replies: list,
    ) -> list[int]:
        """Send ``todo`` once; fill ``replies``; return the indexes redirected elsewhere."""
        keyed = [i for i in todo if commands[i][1] is not None]
        tickets = []
        for address, indexes in self._groups(commands, keyed, asking).items():
            parts = [(_ASKING + commands[i][0]) if i in asking else commands[i][0]
                     for i in indexes]
            sent = len(indexes) + sum(1 for i in indexes if i in asking)
            tickets.append((address, indexes, self._pipe(address).submit(b"".join(parts), sent)))
        broadcast = [i for i in todo if commands[i][1] is None]
        if broadcast:
            payload = b"".join(commands[i][0] for i in broadcast)
            for address in self._master_list():
                ticket = self._pipe(address).submit(payload, len(broadcast))
                tickets.append((address, broadcast, ticket))
        redirected: list[int] = []
        answered: set[int] = set()
        stale = False
        for address, indexes, ticket in tickets:
            got = self._wait(address, ticket)
            if indexes is broadcast:  # the first master's reply, unless another one failed
                for i, reply in zip(indexes, got, strict=True):
                    if i not in answered or (_failed(reply) and not _failed(replies[i])):
                        replies[i] = reply
                    answered.add(i)
                continue
            got = _drop_asking(got, [i in asking for i in indexes])
            for i, reply in zip(indexes, got, strict=True):
                where = _redirect(reply)
                if where is None:
                    replies[i] = reply
                    continue
                redirected.append(i)
                if where[0] == "ASK":
                    asking[i] = where[2]
                else:
                    asking.pop(i, None)
                    stale = True
        if stale:
            self._refresh()
        return redirected

    def _groups(
        self, commands: list[tuple[bytes, bytes | None]], indexes: Iterable[int],
        asking: dict[int, Address],
    ) -> dict[Address, list[int]]:
        slots = self._slot_map()
        groups: dict[Address, list[int]] = {}
        for i in indexes:
            key = commands[i][1]
            if key is None:
                address = self._master_list()[0]
            else:
                address = asking.get(i) or slots[key_slot(key)]
            groups.setdefault(address, []).append(i)
        return groups

    def _wait(self, address: Address, ticket) -> list:
        try:
            return self._pipe(address).wait(ticket)
        except StoreError:
            with self._lock:  # a master gone: a failover may have moved its slots
                self._slots = []
            raise

    def _pipe(self, address: Address) -> RedisPipe:
        with self._lock:
            pipe = self._pipes.get(address)
            if pipe is None:
                url = f"{self._scheme}://{address[0]}:{address[1]}/0"
                pipe = RedisPipe(url, timeout=self.timeout, credentials=self._credentials)
                self._pipes[address] = pipe
            return pipe

    def _slot_map(self) -> list[Address]:
        slots = self._slots
        if not slots:
            self._refresh()
            slots = self._slots
        return slots

    def _master_list(self) -> list[Address]:
        self._slot_map()
        return self._masters

    def _refresh(self) -> None:
        """Read CLUSTER SLOTS from the first node that answers; every slot must be served."""
        errors = []
        for address in [*self._masters, *self.startup]:
            try:
                (reply,) = self._pipe(address).call(pack(b"CLUSTER", b"SLOTS"))
            except StoreError as exc:
                errors.append(str(exc))
                continue
            if isinstance(reply, hiredis.ReplyError):
                errors.append(str(reply))
                continue
            slots: list[Address | None] = [None] * SLOTS
            masters: list[Address] = []
            for start, end, master, *_replicas in reply:
                host = master[0].decode() or address[0]
                node = (host, int(master[1]))
                if node not in masters:
                    masters.append(node)
                for slot in range(start, end + 1):
                    slots[slot] = node
            if None in slots:
                errors.append(f"{address[0]}:{address[1]} serves a cluster with unassigned slots")
                continue
            with self._lock:
                self._slots, self._masters = slots, masters  # type: ignore[assignment]
            return
        raise StoreError(f"no redis cluster node gave its slot map: {'; '.join(errors)}")


def _failed(reply: object) -> bool:
    return isinstance(reply, hiredis.ReplyError)


def _drop_asking(replies: list, asked: list[bool]) -> list:
    """Remove the ``ASKING`` replies sent before redirected commands."""
    if not any(asked):
        return replies
    out, at = [], 0
    for was_asked in asked:
        if was_asked:
            at += 1  # the +OK of ASKING
        out.append(replies[at])
        at += 1
    return out
