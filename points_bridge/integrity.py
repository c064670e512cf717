"""Is a (restored) store whole? Keys per tenant, tenant keys open, archive files where they
were written, balances equal ledgers.

``itemseal store verify`` runs this after a restore (and on any live store):
it reads, never writes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codegen.codes import NUMERIC_24
from codegen.exc import CodegenError
from codegen.keys import KeyStore
from codegen.store.backup import count_keys
from codegen.store.keyspace import TENANT_INDEX
from points_bridge.exc import PointsError
from points_bridge.ledger import Ledger
from points_bridge.ledger_archive import missing_files
from points_bridge.members import MemberStore


@dataclass
class VerifyReport:
    keys_per_tenant: dict[str, int]
    tenants: int
    tenant_keys_opened: int
    members_checked: int
    problems: list[str]


def verify_store(
    client: Any,
    master: Any,
    *,
    sample: int = 200,
    expected: Mapping[str, int] | None = None,
    rng: random.Random | None = None,
) -> VerifyReport:
    """Check a (restored) store: keys per tenant, tenant keys open, balances equal ledgers.

    ``master``: the MasterKey, or an exception raised finding it (then every
    tenant key is a problem). ``expected``: keys per tenant of the backup, to
    compare with. ``sample``: members per tenant whose ledger is summed.
    """
    rng = rng or random.Random()
    problems: list[str] = []
    counts = dict(sorted(count_keys(client).items()))
    for tenant, want in sorted((expected or {}).items()):
        have = counts.get(tenant, 0)
        if have < want:
            problems.append(f"tenant {tenant}: {have} keys, the backup has {want}")
    tenants = sorted(t.decode() for t in client.smembers(TENANT_INDEX))
    opened = 0
    members_checked = 0
    for tenant in tenants:
        if isinstance(master, Exception):
            problems.append(f"tenant {tenant}: its keys cannot be opened: {master}")
        else:
            store = KeyStore(client, master)
            for info in store.list(tenant):
                try:
                    store.signer(tenant, info.key_id, NUMERIC_24)
                    opened += 1
                except (CodegenError, ValueError) as exc:
                    problems.append(f"tenant {tenant}: key {info.key_id} does not open: {exc}")
        problems.extend(f"tenant {tenant}: {exc}" for exc in missing_files(client, tenant))
        members = MemberStore(client, tenant,
                              master=None if isinstance(master, Exception) else master)
        ledger = Ledger(client, tenant)
        try:
            cards = list(members.cards())
        except Exception as exc:  # noqa: BLE001 - a damaged record is a problem to report
            problems.append(f"tenant {tenant}: cannot list members: {exc}")
            continue
        for card in rng.sample(cards, min(sample, len(cards))):
            member = members.get(card)
            if member is None:
                continue
            members_checked += 1
            try:  # archived entries too: this reads the archive's files
                total = sum(entry.delta for entry in ledger.history(card))
            except PointsError as exc:
                problems.append(f"tenant {tenant}: member {card}: {exc}")
                continue
            if total != member.balance:
                problems.append(
                    f"tenant {tenant}: member {card} has balance {member.balance},"
                    f" its ledger sums to {total}"
                )
    return VerifyReport(counts, len(tenants), opened, members_checked, problems)

