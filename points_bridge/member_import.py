"""Write checked import rows a batch at a time: a few round trips per batch, not per member.

A batch of rows with distinct phones goes in four pipelined steps:

1. ``MGET`` of every phone's index. A phone with a member is an update: its
   record and opening-balance idem field are read in one more round trip,
   and only what differs is written (a re-run of the same file writes
   nothing).
2. New phones get cards: the CRM's when given, else a block from the
   tenant's counter in one ``INCRBY`` (``MemberStore.issue_cards``).
3. ``SET NX`` of every new phone's index, as ``MemberStore.ensure`` does
   first, so a concurrent first claim of the same phone still makes one
   member; a phone that lost that race is written the one-row way.
4. One ``import_members.lua`` per member shard creates the records with
   their opening balances and CRM events, exactly as ``member_update.lua``
   and ``ledger_apply.lua`` would one member at a time.

What is rare (a half-done create or rebind found in the index, a lost race,
a tier to pin, an existing member's new profile) goes through the same
``MemberStore`` and ``Ledger`` calls as before, one row at a time.

Step 4 runs on a writer thread (``BatchWriter``) while the caller checks and
prepares the next batch: redis-server spends about as long on a batch's
scripts as Python spends on preparing it, and one after the other they held
an import to ~10,000 members/s (``benchmarks/bench_members.py``). What the
file says still happens in file order: scripts run in batch order on the one
thread, a batch holding a phone of a batch not yet written waits for it, and
so does every one-row write of the caller (a lost race could otherwise take a
CRM card before the line above it). A process that dies mid-import leaves
phones indexed without records, which a re-run completes, as before.

On a single server steps 3 and 4 are sent as RESP packed here
(``wire.Conversation``, each thread on a connection of its own), and the
writer sends a batch's scripts before it reads the replies of the batch
before, so redis-server is never left waiting while the writer counts
outcomes and packs the next calls: with redis-py's pipelines (an ``SCRIPT
EXISTS`` round trip, then the batch, then its replies) an import ran
~20,000 members/s at 100k rows, ~22,000-23,000 without them
(``benchmarks/bench_members.py``). A cluster keeps redis-py's cluster client.

Measured (``benchmarks/bench_members.py``) rather than guessed: claiming the
phones on the writer thread too, or on a third thread, was slower (the
writer, which paces the import, waited for them); batches of 4,000 were no
faster than 2,000 and hold redis-server twice as long per script call.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from codegen.keys import MasterKey
from codegen.store.keyspace import shard_of
from codegen.store.scripts import script_source
from codegen.store.wire import Conversation, ScriptSet, pack
from points_bridge.cards import is_valid_card, normalize_card
from points_bridge.exc import BadInput, PointsError
from points_bridge.ledger import Ledger, body_sha, lot_expiry
from points_bridge.members import ATTR, Member, MemberStore, new_member_fields, parse_index
from points_bridge.scoped import points_scripts
from points_bridge.settings import PointsSettings

OPENING_KEY = "import:opening-balance"
OPENING_REASON = "import: opening balance"
REFUSED_CARD = "already held by another member: the row is refused"


@dataclass(frozen=True)
class ImportRow:
    """One checked row of a members file: where it was and what to write."""

    where: str
    e164: str
    profile: dict[str, str]
    birthday: str | None
    attributes: dict[str, str]
    points: int
    card: str
    tier: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


@functools.lru_cache(maxsize=4096)
def _opening_sha(points: int) -> str:
    """The body hash ``Ledger.adjust`` keys an opening balance of ``points`` with
    (cached: a CRM file repeats its balances, and each hash is a JSON dump and a SHA)."""
    return body_sha({"delta": points, "reason": OPENING_REASON})


Job = TypeVar("Job")


class BatchWriter(Generic[Job]):
    """One thread that runs ``work`` on jobs in the order they were submitted.

    At most ``depth`` jobs are held (the one running included), so memory stays
    flat however long the file; ``submit`` waits for room. The first exception
    of ``work`` stops the thread, drops what was queued behind it, and is
    raised again, the same exception, by the caller's next ``submit`` or
    ``drain``. redis-py releases the GIL while it waits on its socket, so the
    caller's Python work overlaps the server's.
    """

    def __init__(self, work: Callable[[Job], None], depth: int = 2,
                 start: Callable[[Job], None] | None = None) -> None:
        """``start``, when given, is called on the thread for each job before ``work``, and
        for the job behind the running one as soon as it is queued (before ``work`` of the
        running one): a job can be sent to a server before the replies of the last are in."""
        self._work = work
        self._start = start
        self._depth = max(1, depth)
        self._jobs: deque[Job] = deque()
        self._error: BaseException | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="member-import-writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._error is not None
                                or len(self._jobs) < self._depth)
            self._raise()
            self._jobs.append(job)
            self._cond.notify_all()

    def pending(self) -> list[Job]:
        """The jobs submitted and not finished (the running one first)."""
        with self._cond:
            return list(self._jobs)

    def drain(self) -> None:
        """Wait until every job submitted is done; raise the writer's error if it failed."""
        with self._cond:
            self._cond.wait_for(lambda: self._error is not None or not self._jobs)
            self._raise()

    def close(self) -> None:
        """Finish the jobs held (none after an error) and end the thread; raise nothing."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        started = 0  # jobs at the head of the queue already started
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._jobs or self._closed)
                if not self._jobs:
                    return
                job = self._jobs[0]
                # The running job and the one behind it; only this thread takes jobs off.
                todo = list(self._jobs)[started:2] if self._start else []
            try:
                for ahead in todo:
                    self._start(ahead)
                    started += 1
                self._work(job)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                with self._cond:
                    self._error = exc
                    self._jobs.clear()
                    self._cond.notify_all()
                return
            started = max(0, started - 1)
            with self._cond:
                self._jobs.popleft()
                self._cond.notify_all()


@dataclass
class _Creates:
    """One batch's create scripts for the writer: (KEYS, ARGV, rows) per member shard.

    On a single server ``packed`` holds the calls as EVALSHA in RESP, and
    ``replies`` the replies once read (the writer may read them before the
    batch's turn when the server lost the script; see ``_reload``).
    """

    phones: frozenset[str]
    calls: list[tuple[list[str], list[bytes], list[tuple[ImportRow, str]]]]
    packed: list[bytes] = field(default_factory=list)
    replies: list | None = None


class MemberImporter:
    """Write batches of ``ImportRow`` for one tenant (see the module docstring).

    Use it as a context manager, or call ``finish`` then ``close``: the
    outcomes of new members reach the report at ``finish``.
    """

    def __init__(self, client: redis.Redis, tenant: str, settings: PointsSettings, *,
                 clock: Callable[[], float] = time.time, master: MasterKey | None = None,
                 depth: int = 2) -> None:
        """``master`` opens the tenant's card key: new members' cards are made with it;
        ``depth``: batches of create scripts held for the writer thread (the running one
        included)."""
        self._redis = client
        self._cluster = isinstance(client, RedisCluster)
        self.members = MemberStore(client, tenant, clock=clock, master=master)
        self.ledger = Ledger(client, tenant, clock=clock)
        self.settings = settings
        self._clock = clock
        self.keys = self.members.keys
        self._scripts = points_scripts(client)
        self._first_tier = settings.ladder.tiers[0].name
        self._written = ImportReport()  # the writer thread's outcomes, until finish()
        # A single server is sent packed commands (module docstring): the caller's claims
        # and the writer's scripts each on a connection of their own.
        self._claims = None if self._cluster else Conversation(client)
        self._talk = None if self._cluster else Conversation(client)
        self._packer = ScriptSet(None, "points_bridge", ("import_members",))
        self._sent: deque[_Creates] = deque()  # the writer's jobs sent, replies not read
        self._writer: BatchWriter[_Creates] = (
            BatchWriter(self._run_creates, depth) if self._cluster
            else BatchWriter(self._read_creates, depth + 1, start=self._send_creates))

    def __enter__(self) -> MemberImporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def finish(self, report: ImportReport) -> None:
        """Wait for the writer; add the outcomes it holds to ``report`` (raise its error)."""
        self._writer.drain()
        report.created += self._written.created
        report.updated += self._written.updated
        report.errors += self._written.errors
        self._written = ImportReport()

    def close(self) -> None:
        """End the writer thread once what it holds is written (nothing after an error)."""
        self._writer.close()
        for talk in (self._claims, self._talk):
            if talk is not None:
                talk.close()

    def write(self, rows: Sequence[ImportRow], report: ImportReport) -> None:
        """Write rows whose phones are distinct; add the outcome of each to ``report``.

        New members are written by the writer thread: their outcomes are added
        at ``finish``. A row whose phone is still being written waits for it.
        """
        if not rows:
            return
        phones = {row.e164 for row in rows}
        if any(not job.phones.isdisjoint(phones) for job in self._writer.pending()):
            self._writer.drain()
        keys = [self.keys.phone(row.e164) for row in rows]
        # MGET where the phones may share a server; a cluster reads them per slot.
        raws = self._redis.mget_nonatomic(keys) if self._cluster else self._redis.mget(keys)
        known: list[tuple[ImportRow, str]] = []
        fresh: list[ImportRow] = []
        for row, raw in zip(rows, raws, strict=True):
            card, _ = parse_index(raw)
            if card is None:
                fresh.append(row)
            else:
                known.append((row, card))
        self._update_known(known, report)
        self._create(fresh, report)

    # -- phones that have an index: updates ---------------------------------------------
    def _update_known(self, known: list[tuple[ImportRow, str]], report: ImportReport) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for _, card in known:
            pipe.hgetall(self.keys.member(card))
            pipe.hget(self.keys.idem(card), OPENING_KEY)
        replies = pipe.execute()
        for i, (row, card) in enumerate(known):
            member = self.members.get_from(card, replies[2 * i])
            if member is None or member.phone != row.e164:  # half-done create, rebind, stale
                self._writer.drain()
                self._one_row(row, report)
                continue
            try:
                opened = self._opening_posted(card, replies[2 * i + 1],
                                              replies[2 * i].get(b"opened"), row.points)
                self._update(row, member, opened)
            except PointsError as exc:
                report.errors.append((row.where, str(exc)))
                continue
            report.updated += 1

    def _opening_posted(self, card: str, seen: bytes | None, kept: bytes | None,
                        points: int | None) -> int | None:
        """The opening balance the member already has (None: none was posted), from the
        idem hash's ``<sha> <entry id>``, or from the record once the entry is archived
        (``opened``, ``lua/ledger_archive.lua``); read from the entry only if it differs."""
        if kept is not None:
            return int(kept)
        if seen is None:
            return None
        sha, entry_id = seen.decode().split()
        if not points or sha == _opening_sha(points):
            return points or 0
        first = self.ledger.entry(card, entry_id)
        return points if first is None else first.delta

    def _update(self, row: ImportRow, member: Member, opened: int | None) -> None:
        """``opened``: the opening balance already posted (``_opening_posted``)."""
        if row.card and member.card != "".join(c for c in row.card if c.isdigit()):
            raise BadInput("card", row.card, f"{row.e164} is already the member of card "
                           f"{member.card}")
        if opened is not None and row.points and opened != row.points:
            raise BadInput("points", row.points, f"opening balance already {opened}")
        if self._profile_differs(row, member):
            self.members.update_profile(member.card, birthday=row.birthday,
                                        attributes=row.attributes)
        self._pin(row, member)
        if row.points and opened is None:
            self._adjust(member.card, row.points)

    @staticmethod
    def _profile_differs(row: ImportRow, member: Member) -> bool:
        if row.birthday is not None and row.profile.get("birthday") != member.birthday:
            return True
        for name, value in row.profile.items():
            if name.startswith(ATTR) and member.attributes.get(name[len(ATTR):], "") != value:
                return True
        return False

    def _pin(self, row: ImportRow, member: Member) -> None:
        if row.tier and row.tier != self.settings.ladder.tiers[0].name \
                and member.pinned_tier != row.tier:
            self.members.pin_tier(member.card, row.tier, reason="import")

    def _adjust(self, card: str, points: int) -> None:
        self.ledger.adjust(card, points, reason=OPENING_REASON, idem=OPENING_KEY,
                           expiry=(self.settings.expiry_months, self.settings.timezone))

    # -- new phones: created in batches -------------------------------------------------
    def _create(self, fresh: list[ImportRow], report: ImportReport) -> None:
        cards: list[str | None] = []
        issued = iter(self.members.issue_cards(sum(not row.card for row in fresh)))
        for row in fresh:
            if not row.card:
                cards.append(next(issued))
                continue
            digits = normalize_card(row.card)
            if digits is None or not is_valid_card(digits):
                report.errors.append((row.where, str(BadInput(
                    "card", row.card, "not a card number (12 digits, the last a check digit)"))))
                cards.append(None)
            else:
                cards.append(digits)
        claimed = [(row, card) for row, card in zip(fresh, cards, strict=True) if card]
        won: list[tuple[ImportRow, str]] = []
        lost: list[ImportRow] = []
        for (row, card), ok in zip(claimed, self._claim(claimed), strict=True):
            if ok:
                won.append((row, card))
            else:  # a first claim of this phone came in between: the one-row way
                lost.append(row)
        if lost:
            self._writer.drain()
            for row in lost:
                self._one_row(row, report)
        if won:
            self._writer.submit(self._creates(won))

    def _claim(self, claimed: list[tuple[ImportRow, str]]) -> list[object]:
        """``SET NX`` of each row's phone index to its card, in one round trip: the replies.

        The CRM's cards go first into the sets that walks of the cards read
        (``MemberStore.cards``). On a single server the commands are packed here
        (``wire.pack``): redis-py's pipeline took ~3.1 us a row of the importing process
        to queue and pack a batch of them, this under 1 us (timed apart), and the two
        threads of an import share one core's worth of Python
        (``benchmarks/bench_members.py``).
        """
        crm_cards: dict[int, list[str]] = defaultdict(list)
        for row, card in claimed:
            if row.card:
                crm_cards[shard_of(card)].append(card)
        if self._cluster:
            pipe = self._redis.pipeline(transaction=False)
            for shard, kept in crm_cards.items():
                pipe.sadd(self.keys.crm_cards(shard), *kept)
            for row, card in claimed:
                pipe.execute_command("SET", self.keys.phone(row.e164), card, "NX")
            return pipe.execute()[len(crm_cards):]
        commands = [pack(b"SADD", self.keys.crm_cards(shard), *kept)
                    for shard, kept in crm_cards.items()]
        phone_key = self.keys.phone
        commands += [pack(b"SET", phone_key(row.e164), card, b"NX") for row, card in claimed]
        replies = self._claims.call(b"".join(commands), len(commands))
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies[len(crm_cards):]

    def _creates(self, won: list[tuple[ImportRow, str]]) -> _Creates:
        """The import_members.lua calls of a batch's new members, one per member shard."""
        now = int(self._clock())
        expires = (lot_expiry(now, self.settings.expiry_months, self.settings.timezone)
                   if self.settings.expiry_months else 0)
        first_tier, at = self._first_tier, str(now)
        head = [at.encode(), OPENING_KEY.encode(), OPENING_REASON.encode(),
                str(expires).encode()]  # ARGV 2..5 of each call
        entries: dict[int, bytes] = {}  # points -> the opening entry's CRM event data
        by_shard: dict[int, list[tuple[ImportRow, str]]] = defaultdict(list)
        for row, card in won:
            by_shard[shard_of(card)].append((row, card))
        record_keys = self.keys.record_keys
        calls = []
        for shard, group in by_shard.items():
            keys = [self.keys.events(shard), self.keys.counts(shard)]
            specs = []
            events = []  # ARGV 6..: per row its member.created and ledger event data
            for row, card in group:
                keys += record_keys(card)
                fields = new_member_fields(card, row.e164, first_tier, "import", now,
                                           row.profile)
                # The events' JSON is made here, not by cjson in the script: Python has
                # time to spare while the server runs the scripts (bench_members.py).
                # Compact like cjson's, so an imported member's events are no larger.
                events.append(orjson.dumps(fields))
                spec = {"card": card}
                if row.points:
                    delta = spec["delta"] = str(row.points)
                    spec["sha"] = _opening_sha(row.points)
                    entry = entries.get(row.points)
                    if entry is None:
                        entry = entries[row.points] = orjson.dumps(
                            {"kind": "adjust", "delta": delta, "idem": OPENING_KEY,
                             "reason": OPENING_REASON, "balance": delta,
                             "earned": fields["earned"], "tier": first_tier, "at": at})
                    events.append(entry)
                else:
                    events.append(b"")
                specs.append(spec)
            calls.append((keys, [orjson.dumps(specs), *head, *events], group))
        job = _Creates(frozenset(row.e164 for row, _ in won), calls)
        if not self._cluster:
            job.packed = [self._packer.evalsha("import_members", keys, args)
                          for keys, args, _ in calls]
        return job

    def _run_creates(self, job: _Creates) -> None:
        """On the writer thread, on a cluster: the batch's script calls, one per shard
        (redis-py refuses EVALSHA in a cluster pipeline)."""
        script = self._scripts.import_members
        self._outcomes(job, [script(keys=keys, args=args) for keys, args, _ in job.calls])

    def _send_creates(self, job: _Creates) -> None:
        """On the writer thread, on a single server: send the batch's script calls.

        The writer sends the next batch before it reads the replies of the last, so
        redis-server has a batch's scripts in hand while the writer reads and counts
        the last one's outcomes: one after the other, the server idled for that time
        (``benchmarks/bench_members.py``). The caller's reads are served between the
        scripts, as before.
        """
        self._talk.send(b"".join(job.packed), len(job.packed))
        self._sent.append(job)

    def _read_creates(self, job: _Creates) -> None:
        """On the writer thread, on a single server: the replies of the first batch sent."""
        assert self._sent[0] is job
        if job.replies is None:
            job.replies = self._talk.replies(len(job.packed))
        if any(isinstance(reply, NoScriptError) for reply in job.replies):
            self._reload()
        self._sent.popleft()
        for reply in job.replies:
            if isinstance(reply, Exception):
                raise reply
        self._outcomes(job, job.replies)

    def _reload(self) -> None:
        """The server lost the script (a restart, SCRIPT FLUSH): load it and send again the
        calls that came back NOSCRIPT (they did not run), of every batch sent, in order."""
        for job in self._sent:
            if job.replies is None:
                job.replies = self._talk.replies(len(job.packed))
        source = script_source("points_bridge", "import_members").encode()
        self._talk.call(pack(b"SCRIPT", b"LOAD", source), 1)
        for job in self._sent:
            missing = [i for i, reply in enumerate(job.replies)
                       if isinstance(reply, NoScriptError)]
            if missing:
                again = self._talk.call(b"".join(job.packed[i] for i in missing), len(missing))
                for i, reply in zip(missing, again, strict=True):
                    job.replies[i] = reply

    def _outcomes(self, job: _Creates, replies: list) -> None:
        """Count a written batch's new members into the writer's report."""
        for (_, _, group), outcomes in zip(job.calls, replies, strict=True):
            for (row, card), outcome in zip(group, outcomes, strict=True):
                self._created(row, card, outcome if isinstance(outcome, str)
                              else outcome.decode(), self._written)

    def _created(self, row: ImportRow, card: str, outcome: str, report: ImportReport) -> None:
        if outcome == "created":
            report.created += 1
            if row.tier and row.tier != self._first_tier:
                self.members.pin_tier(card, row.tier, reason="import")
            return
        self._scripts.del_if(keys=[self.keys.phone(row.e164)], args=[card])
        if outcome == "exists" and row.card:
            report.errors.append((row.where, str(BadInput("card", row.card, REFUSED_CARD))))
        elif outcome == "exists":  # an issued card with a record: write the one-row way
            self._one_row(row, report)
        else:
            report.errors.append((row.where, str(BadInput("points", row.points, "out of bounds"))))

    # -- the one-row way ----------------------------------------------------------------
    def _opened(self, card: str, points: int | None) -> int | None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(self.keys.idem(card), OPENING_KEY)
        pipe.hget(self.keys.member(card), "opened")
        return self._opening_posted(card, *pipe.execute(), points)

    def _one_row(self, row: ImportRow, report: ImportReport) -> None:
        """Write one row with the single-member calls (what is rare in a batch)."""
        members, settings = self.members, self.settings
        try:
            existing = members.by_phone(row.e164)
            if existing is not None:
                self._update(row, existing, self._opened(existing.card, row.points))
                report.updated += 1
                return
            if row.card:
                member, created = members.ensure_with_card(
                    row.e164, row.card, settings=settings, source="import", profile=row.profile)
            else:
                member, created = members.ensure(row.e164, settings=settings, source="import",
                                                 profile=row.profile)
            if not created:
                self._update(row, member, self._opened(member.card, row.points))
                report.updated += 1
                return
            self._pin(row, member)
            if row.points:
                self._adjust(member.card, row.points)
        except PointsError as exc:
            report.errors.append((row.where, str(exc)))
            return
        report.created += 1
