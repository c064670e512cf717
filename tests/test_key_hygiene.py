"""Keys under load and secrets out of sight.

* A key rotated while checks run never makes a genuine code answer
  ``counterfeit`` (revocation: ``test_verify_engine.py::test_a_revoked_key_answers_revoked``).
* No tenant HMAC key, master key or CRM secret, in any usual encoding, shows
  in the server's log, the CLI's output and errors, the exports, the store's
  values or its append-only file, whatever errors are provoked on the way.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from helpers.aio import run
from helpers.cli_runner import ITEMSEAL
from helpers.crashkit import own_world
from helpers.crm import serve_receiver
from helpers.homes import make_short_home
from helpers.serving import serving

from codegen.codes import NUMERIC_24
from codegen.keys import KeyStore, MasterKey
from codegen.store.wire import link_for
from points_bridge.crm import CrmSecret
from verify_api.app import create_app
from verify_api.check import answers
from verify_api.check.engine import VerifyEngine


def test_rotating_the_key_under_load_never_says_counterfeit(batch_factory, redis_client,
                                                           master_key):
    batch, key_store = batch_factory("ACME", count=400)
    engine = VerifyEngine(link_for(redis_client), key_store, key_cache_seconds=0.01,
                          catalog_seconds=0)
    signer = key_store.signer("ACME", 0, NUMERIC_24)
    codes = [signer.code(batch.first_serial + i) for i in range(batch.count)]
    seen: dict[str, int] = {}
    operator = KeyStore(redis_client, master_key)  # another process's view: `key rotate`

    async def check(offset: int, stop: asyncio.Event) -> None:
        i = offset
        while not stop.is_set():
            batch = codes[i % 400 : i % 400 + 20]
            found = await engine.verify_batch("ACME", batch, f"10.0.0.{offset}")
            found.append(await engine.lookup("ACME", codes[(i * 7) % 400], f"10.0.1.{offset}"))
            for answer in found:
                seen[answer.result] = seen.get(answer.result, 0) + 1
            i += 20

    async def rotate(stop: asyncio.Event) -> None:
        for _ in range(5):
            await asyncio.sleep(0.05)
            await asyncio.to_thread(operator.rotate, "ACME")
        await asyncio.sleep(0.1)
        stop.set()

    async def under_load() -> None:
        stop = asyncio.Event()
        await asyncio.gather(rotate(stop), *(check(n, stop) for n in range(4)))

    try:
        run(under_load())
    finally:
        engine.link.close()
    assert [k.key_id for k in operator.list("ACME")] == [0, 1, 2, 3, 4, 5]
    assert set(seen) == {answers.GENUINE} and seen[answers.GENUINE] > 100


# -- secrets -----------------------------------------------------------------------------


def forms(secret: bytes) -> set[bytes]:
    """The ways a secret could leak: raw, hex, base64 (standard and URL-safe, +-padding)."""
    found = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(secret)
        found |= {text, text.rstrip(b"=")}
    return {f for f in found if len(f) >= 16}


def store_values(client) -> bytes:
    """Every value in the store, as one blob."""
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key))
        elif kind == b"hash":
            out += [b"%s=%s" % kv for kv in client.hgetall(key).items()]
        elif kind == b"stream":
            out += [repr(e).encode() for e in client.xrange(key)]
        elif kind == b"zset":
            out += client.zrange(key, 0, -1)
        elif kind == b"list":
            out += client.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(client.smembers(key))
    return b"\n".join(out)


def leaks(blob: bytes, secrets: dict[str, bytes]) -> list[str]:
    return [name for name, secret in secrets.items() for form in forms(secret) if form in blob]


@pytest.fixture
def world():
    world = own_world(make_short_home(), count=50)
    yield world
    world.close()


def itemseal(world, *commands: tuple[str, ...], env: dict[str, str] | None = None) -> list[bytes]:
    """Run independent CLI commands at once; return each one's stdout + stderr."""
    procs = [
        subprocess.Popen([ITEMSEAL, *args], env=env or world.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
        for args in commands
    ]  # fmt: skip
    return [proc.communicate(timeout=60)[0] for proc in procs]


@pytest.mark.slow
def test_no_secret_in_logs_errors_exports_or_the_store(world, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key_store = KeyStore(world.client, world.master)
    tenant_key = key_store._open("ACME", key_store._record("ACME", 0))
    crm_secret = os.urandom(24).hex()
    secrets = {"tenant key": tenant_key, "master key": world.master.secret,
               "crm secret": crm_secret.encode()}  # fmt: skip
    wrong = dict(world.env(), ITEMSEAL_MASTER_KEY=base64.b64encode(os.urandom(32)).decode())
    blobs: dict[str, bytes] = {}

    # The server, with the wrong master key and then the right one, access log on.
    log = tmp_path / "serve.log"
    for env in (wrong, world.env()):
        with serving(env, log) as (base, _):
            verify = f"{base}/v1/tenants/ACME/verify"
            results = [
                requests.post(verify, json={"code": world.codes[0], "phone": "13800138000"}),
                requests.post(verify, json={"code": world.codes[1], "phone": "not a phone"}),
                requests.post(verify, data=b"{broken"),
                requests.post(f"{base}/v1/tenants/NOPE/verify", json={"code": world.codes[2]}),
                requests.get(f"{base}/v1/tenants/ACME/codes/{world.codes[3]}?x={'9' * 50}"),
                requests.get(f"{base}/metrics"),
            ]
            blobs[f"responses ({env is wrong and 'wrong' or 'right'} master key)"] = b"\n".join(
                r.content for r in results)
    assert b"keys_unavailable" in blobs["responses (wrong master key)"]
    assert b'"genuine"' in blobs["responses (right master key)"]
    blobs["server log"] = log.read_bytes()
    assert b"cannot open" in blobs["server log"] or b"master key" in blobs["server log"]

    # The CLI, its errors and its exports.
    exports = {
        (what, fmt): tmp_path / f"{what}.{fmt}" for what in ("members", "ledger")
        for fmt in ("csv", "parquet")
    }  # fmt: skip
    batch_csv = tmp_path / "batch.csv"
    outs = itemseal(world, ("check", "--tenant", "ACME", world.codes[0]), env=wrong)
    outs += itemseal(
        world,
        ("key", "list", "--tenant", "ACME"),
        ("tenant", "show", "ACME"),
        ("check", "--tenant", "ACME", world.codes[0]),
        ("points", "reconcile", "--tenant", "ACME", "--min-age", "0"),
        ("batch", "export", "--tenant", "ACME", "B000001", "--format", "csv",
         "--out", str(batch_csv)),
        *[("export", what, "--tenant", "ACME", "--format", fmt, "--out", str(out))
          for (what, fmt), out in exports.items()],
    )  # fmt: skip
    outs += itemseal(world, ("key", "rotate", "--tenant", "ACME"))
    shown = itemseal(world, ("bridge", "secret", "--tenant", "ACME", "--set", crm_secret))
    assert crm_secret.encode() in shown[0]  # shown by design, to share it with the CRM
    with serve_receiver() as (crm, url):
        crm.poison = {"credit": 401}  # the CRM refuses the credits: they are dead-lettered
        outs += itemseal(
            world,
            ("bridge", "run", "--tenant", "ACME", "--webhook", url, "--once",
             "--max-attempts", "1"),
            ("bridge", "run", "--tenant", "ACME", "--once", "--webhook", "ftp://nowhere"),
        )  # fmt: skip
    outs += itemseal(world, ("bridge", "dead", "--tenant", "ACME"))
    assert crm.received and b"dead-lettered 1" in outs[-3], outs[-3:]
    blobs["CRM deliveries"] = b"\n".join(body + repr(h).encode() for h, body in crm.received)
    for (what, fmt), out in exports.items():
        blobs[f"export {what} {fmt}"] = (
            out.read_bytes() if fmt == "csv" else repr(pq.read_table(out).to_pylist()).encode()
        )
    blobs["batch export"] = batch_csv.read_bytes() + Path(f"{batch_csv}.manifest.json").read_bytes()
    assert world.codes[0].encode() in blobs["batch export"]
    assert b"master key" in outs[0]  # the wrong key was refused, in words
    blobs["CLI output"] = b"\n".join(outs)

    # In process, at DEBUG: the app with the wrong master key, then an error of the store.
    app = create_app(world.client, KeyStore(world.client, MasterKey(os.urandom(32))))
    from falcon import testing

    client = testing.TestClient(app)
    assert client.simulate_post("/v1/tenants/ACME/verify",
                                json={"code": world.codes[4]}).status_code == 503
    app.engine.link.close()
    blobs["caplog"] = caplog.text.encode()
    assert "ACME" in caplog.text

    found = {where: leaks(blob, secrets) for where, blob in blobs.items()}
    assert all(not names for names in found.values()), found

    # The store holds the tenant keys and the CRM secret only sealed, never the master key;
    # the key the bridge signs with opens from it, so the search above looked at live data.
    stored = store_values(world.client) + b"".join(
        p.read_bytes() for p in world.store.data_dir.rglob("*") if p.is_file()
    )  # the values, and the append-only file
    assert leaks(stored, secrets) == []
    assert CrmSecret(world.client, "ACME", world.master).get() == crm_secret.encode()
