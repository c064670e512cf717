"""Tenant HMAC keys, stored in Redis only encrypted under the master key.

The master key never enters Redis: it comes from ``ITEMSEAL_MASTER_KEY`` or a
0600 file in the itemseal home. Each tenant key is sealed with AES-GCM and the
(tenant, key id) as associated data, so a ciphertext copied to another slot
does not open. A short key-check value tells "wrong master key" apart from
"damaged record" so the error can say which.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from codegen.codes import KEY_ID_SLOTS, Profile
from codegen.exc import KeyRevoked, KeySlotsExhausted, MasterKeyError, UnknownKey, WeakSecret
from codegen.signing import CodeSigner
from codegen.store.keyspace import TenantKeys

MASTER_KEY_ENV = "ITEMSEAL_MASTER_KEY"
MASTER_KEY_FILE = "master.key"


MIN_SECRET_CHARS = 16
"""The one minimum length of every secret an operator sets (gateway, CRM webhook, alert
webhook, SMS gateway auth): shorter ones are guessable offline from one signed message."""


def check_secret(secret: str | bytes, what: str = "the secret") -> None:
    """Refuse a secret shorter than ``MIN_SECRET_CHARS`` (``WeakSecret``, 422)."""
    if len(secret) < MIN_SECRET_CHARS:
        raise WeakSecret(f"{what} must be at least {MIN_SECRET_CHARS} characters")


@dataclass(frozen=True)
class MasterKey:
    secret: bytes

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"

    @property
    def check_value(self) -> str:
        return hmac.digest(self.secret, b"itemseal/kcv", "sha256")[:6].hex()

    def seal(self, plaintext: bytes, context: bytes, nonce: bytes) -> bytes:
        return AESGCM(self.secret).encrypt(nonce, plaintext, context)

    def open(self, ciphertext: bytes, context: bytes, nonce: bytes) -> bytes:
        return AESGCM(self.secret).decrypt(nonce, ciphertext, context)

    def seal_record(self, plaintext: bytes, context: bytes, nonce: bytes) -> dict[str, str]:
        """A secret as stored in Redis: its nonce, ciphertext and this key's check value.

        ``context`` (AAD) names what the secret is and whose, so a record copied
        under another tenant or purpose does not open.
        """
        return {
            "nonce": nonce.hex(),
            "sealed": base64.b64encode(self.seal(plaintext, context, nonce)).decode(),
            "kcv": self.check_value,
        }

    def open_record(self, record: Mapping[str, object], context: bytes, what: str) -> bytes:
        """Open a ``seal_record`` record; ``what`` names it in the error ("key 0 of 'ACME'")."""
        if record.get("kcv") != self.check_value:
            raise MasterKeyError(
                f"{what} was sealed under a different master key: set {MASTER_KEY_ENV} or"
                f" restore the {MASTER_KEY_FILE} file it was made with"
            )
        try:
            ciphertext = base64.b64decode(str(record["sealed"]))
            return self.open(ciphertext, context, bytes.fromhex(str(record["nonce"])))
        except InvalidTag:
            raise MasterKeyError(f"{what} does not open: the record is damaged") from None


def _decode_master(text: str, origin: str) -> MasterKey:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise MasterKeyError(f"{origin} must hold 32 bytes as base64 or 64 hex digits")
    return MasterKey(raw)


def load_master_key(home: Path, env: Mapping[str, str], *, create: bool = False) -> MasterKey:
    """Find the master key; create its file only when asked (first tenant).

    Creating it silently on a later call would hide a lost key file behind a
    new one under which no existing tenant key opens.
    """
    if env.get(MASTER_KEY_ENV):
        return _decode_master(env[MASTER_KEY_ENV], MASTER_KEY_ENV)
    path = home / MASTER_KEY_FILE
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise MasterKeyError(f"{path} is readable by others: chmod 600 {path}")
        return _decode_master(path.read_text(), str(path))
    if not create:
        raise MasterKeyError(
            f"no master key: set {MASTER_KEY_ENV} or restore {path}"
            " (it encrypts the tenant keys; without it nothing can be minted or verified)"
        )
    home.mkdir(parents=True, exist_ok=True)
    secret = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(secret).decode() + "\n")
    return MasterKey(secret)


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a tenant key: never the secret."""

    key_id: int
    state: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.state == "active"


class KeyStore:
    """The key ring of every tenant: create, rotate, revoke, and open for signing."""

    def __init__(
        self,
        client: redis.Redis,
        master: MasterKey,
        *,
        clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._redis = client
        self._master = master
        self._clock = clock
        self._random = random_bytes
        self._signers: dict[tuple[str, int, str], CodeSigner] = {}

    @property
    def master(self) -> MasterKey:
        """The master key, for sealing other per-tenant secrets the same way."""
        return self._master

    def _records(self, tenant: str) -> dict[int, dict]:
        return key_ring(self.raw_ring(tenant))

    def raw_ring(self, tenant: str) -> dict[bytes, bytes]:
        """The tenant's key hash as stored (``key_ring`` reads it)."""
        return self._redis.hgetall(TenantKeys(tenant).keys)

    def list(self, tenant: str) -> list[KeyInfo]:
        """Keys oldest first, as itsdangerous orders them."""
        return [key_info(r) for _, r in sorted(self._records(tenant).items())]

    def rotate(self, tenant: str) -> KeyInfo:
        """Add a new key; it signs every batch minted from now on."""
        records = self._records(tenant)
        key_id = max(records, default=-1) + 1
        if key_id >= KEY_ID_SLOTS:
            raise KeySlotsExhausted(
                f"tenant {tenant!r} has used all {KEY_ID_SLOTS} key ids a code can carry"
            )
        record = {
            "key_id": key_id,
            "state": "active",
            "created_at": self._clock(),
            "revoked_at": None,
            **self._master.seal_record(
                self._random(32), _context(tenant, key_id), self._random(12)
            ),
        }
        if not self._redis.hsetnx(TenantKeys(tenant).keys, str(key_id), json.dumps(record)):
            return self.rotate(tenant)  # another rotate took this id first
        return key_info(record)

    def revoke(self, tenant: str, key_id: int) -> KeyInfo:
        """Mark a key compromised: its codes answer ``revoked`` from now on."""
        record = self._record(tenant, key_id)
        if record["state"] != "revoked":
            record.update(state="revoked", revoked_at=self._clock())
            self._redis.hset(TenantKeys(tenant).keys, str(key_id), json.dumps(record))
        self._signers = {k: v for k, v in self._signers.items() if k[:2] != (tenant, key_id)}
        return key_info(record)

    def current(self, tenant: str) -> KeyInfo:
        """The newest active key, the one new batches are signed with."""
        active = [k for k in self.list(tenant) if k.active]
        if not active:
            raise KeyRevoked(tenant, max((k.key_id for k in self.list(tenant)), default=0))
        return active[-1]

    def info(self, tenant: str, key_id: int) -> KeyInfo:
        return key_info(self._record(tenant, key_id))

    def signer(self, tenant: str, key_id: int, profile: Profile) -> CodeSigner:
        """Open a key for signing or checking (cached: opening costs an AES-GCM decrypt)."""
        signer = self._signers.get((tenant, key_id, profile.name))
        if signer is None:
            signer = self.signer_for(tenant, self._record(tenant, key_id), profile)
        return signer

    def signer_for(self, tenant: str, record: dict, profile: Profile) -> CodeSigner:
        """``signer`` from a key record already read (the API reads the ring over its link)."""
        cache_key = (tenant, record["key_id"], profile.name)
        signer = self._signers.get(cache_key)
        if signer is None:
            secret = self._open(tenant, record)
            signer = self._signers[cache_key] = CodeSigner(secret, record["key_id"], profile)
        return signer

    def _record(self, tenant: str, key_id: int) -> dict:
        raw = self._redis.hget(TenantKeys(tenant).keys, str(key_id))
        if raw is None:
            raise UnknownKey(tenant, key_id)
        return json.loads(raw)

    def _open(self, tenant: str, record: dict) -> bytes:
        key_id = record["key_id"]
        return self._master.open_record(
            record, _context(tenant, key_id), f"key {key_id} of tenant {tenant!r}"
        )


def key_ring(raw: Mapping[bytes, bytes]) -> dict[int, dict]:
    """A tenant's key records by id, from the raw hash (``TenantKeys.keys``)."""
    return {int(k): json.loads(v) for k, v in raw.items()}


def _context(tenant: str, key_id: int) -> bytes:
    return f"itemseal/key/{tenant}/{key_id}".encode()


def key_info(record: dict) -> KeyInfo:
    return KeyInfo(
        key_id=record["key_id"],
        state=record["state"],
        created_at=record["created_at"],
        revoked_at=record["revoked_at"],
    )
