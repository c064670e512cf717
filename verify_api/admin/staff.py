"""Office staff accounts: one per person, per tenant, with a role from ``roles.py``.

Bearer tokens (``auth.py``) stay for machines; people log in to the office
(``/office/{tenant}/``) with a username and a password, and a TOTP code when
they have set one up. Why each piece is the way it is:

* Passwords are kept only as an Argon2id hash (``argon2-cffi``): memory-hard,
  so a stolen store is expensive to crack. An unknown username still costs
  one hash, so timing does not tell which usernames exist.
* Lock-out: ``MAX_FAILURES`` wrong passwords in a row lock the account for
  ``LOCK_SECONDS`` (counted with HINCRBY, so two workers cannot lose a
  failure); a correct log-in resets the count; a manager's reset unlocks.
* The TOTP secret must be read back to check a code, so it is sealed with
  the master key (AES-GCM, the tenant and username as context) like the
  gateway secrets; a code is accepted once (its time step is remembered).
* Each account is one hash (``TenantKeys.staff_member``) under the tenant's
  hash tag; the set ``TenantKeys.staff`` lists the usernames.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from codegen.keys import MasterKey
from codegen.store.keyspace import TenantKeys
from codegen.tenants import TenantStore
from verify_api.admin.roles import ROLES, check_role
from verify_api.exc import InvalidField, NotFound, RequestError, Unauthorized

MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
MIN_PASSWORD = 10
MAX_PASSWORD = 256
USERNAME = re.compile(r"[\w.@-]{1,32}")
TOTP_ISSUER = "itemseal"


class UnknownStaff(NotFound):
    code = "unknown_staff"


class StaffExists(RequestError):
    status = 409
    code = "staff_exists"


class LoginRefused(Unauthorized):
    """Wrong username or password, a disabled or locked account, a missing or wrong TOTP code."""

    code = "login_refused"

    def __init__(self, message: str, *, field: str = "password") -> None:
        super().__init__(message)
        self.field = field

    def headers(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class Staff:
    """A staff account as the office and ``itemseal staff list`` show it (never the hash)."""

    tenant: str
    username: str
    role: str
    disabled: bool
    failures: int
    locked_until: float | None
    totp: bool
    must_change: bool
    created_at: float
    changed_at: float

    def locked(self, now: float) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def to_json(self, now: float) -> dict:
        return {"username": self.username, "role": self.role, "disabled": self.disabled,
                "locked": self.locked(now), "totp": self.totp, "must_change": self.must_change,
                "created_at": self.created_at, "changed_at": self.changed_at}


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username or ""):
        raise InvalidField("username", "a username is 1-32 letters, digits, '.', '_', '@' or '-'")
    return username


def check_password(password: str) -> str:
    """The one password rule: long enough to resist guessing, short enough to hash."""
    if not MIN_PASSWORD <= len(password or "") <= MAX_PASSWORD:
        raise InvalidField("password",
                           f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _decode(raw: dict) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


class StaffStore:
    """Add, list, change and authenticate one tenant's office staff."""

    def __init__(
        self,
        client: redis.Redis,
        tenant: str,
        *,
        master: MasterKey | None = None,
        clock: Callable[[], float] = time.time,
        randbytes: Callable[[int], bytes] = os.urandom,
        hasher: PasswordHasher | None = None,
    ) -> None:
        """``hasher``: Argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile)."""
        self._redis = client
        self.tenant = tenant
        self._keys = TenantKeys(tenant)
        self._master = master
        self._clock = clock
        self._randbytes = randbytes
        self._hasher = hasher or PasswordHasher()

    # -- reading -----------------------------------------------------------------------
    def get(self, username: str) -> Staff:
        raw = _decode(self._redis.hgetall(self._keys.staff_member(username)))
        if not raw.get("role"):
            raise UnknownStaff(f"tenant {self.tenant!r} has no staff member {username!r}")
        return self._staff(username, raw)

    def list(self) -> list[Staff]:
        TenantStore(self._redis).get(self.tenant)
        names = sorted(n.decode() for n in self._redis.smembers(self._keys.staff))
        found = []
        for name in names:
            try:
                found.append(self.get(name))
            except UnknownStaff:
                continue
        return found

    def _staff(self, username: str, raw: dict[str, str]) -> Staff:
        locked = float(raw.get("locked_until") or 0)
        return Staff(
            tenant=self.tenant, username=username, role=raw["role"],
            disabled=raw.get("disabled") == "1", failures=int(raw.get("failures") or 0),
            locked_until=locked or None, totp=bool(raw.get("totp")),
            must_change=raw.get("must_change") == "1",
            created_at=float(raw.get("created_at") or 0),
            changed_at=float(raw.get("changed_at") or 0),
        )

    # -- changing ----------------------------------------------------------------------
    def add(self, username: str, role: str, password: str) -> Staff:
        """Create an account; an existing username is refused (409), never overwritten."""
        TenantStore(self._redis).get(self.tenant)
        check_username(username)
        if role not in ROLES:
            raise InvalidField("role", f"the role is one of {', '.join(ROLES)}")
        check_role(role)
        check_password(password)
        key = self._keys.staff_member(username)
        now = repr(self._clock())
        hashed = self._hasher.hash(password)  # slow: before the claim, so both writes follow
        if not self._redis.hsetnx(key, "role", role):
            raise StaffExists(f"tenant {self.tenant!r} already has a staff member {username!r}")
        self._redis.hset(key, mapping={"hash": hashed, "disabled": "0",
                                       "failures": "0", "created_at": now, "changed_at": now})
        self._redis.sadd(self._keys.staff, username)
        return self.get(username)

    def set_role(self, username: str, role: str) -> Staff:
        if role not in ROLES:
            raise InvalidField("role", f"the role is one of {', '.join(ROLES)}")
        self.get(username)
        self._redis.hset(self._keys.staff_member(username), "role", role)
        return self.get(username)

    def set_disabled(self, username: str, disabled: bool) -> Staff:
        """Disable (no log-in; the live sessions end at their next request) or enable."""
        self.get(username)
        self._redis.hset(self._keys.staff_member(username), "disabled", "1" if disabled else "0")
        return self.get(username)

    def reset(self, username: str, password: str, *, drop_totp: bool = False) -> Staff:
        """A manager's reset: a new password to change at the next log-in, the lock lifted."""
        check_password(password)
        self.get(username)
        key = self._keys.staff_member(username)
        self._redis.hset(key, mapping={
            "hash": self._hasher.hash(password), "failures": "0", "locked_until": "0",
            "must_change": "1", "changed_at": repr(self._clock())})
        if drop_totp:
            self._redis.hdel(key, "totp", "totp_step")
        return self.get(username)

    def change_password(self, username: str, old: str, new: str) -> Staff:
        """The staff member's own change: the old password first, then the new one."""
        raw = _decode(self._redis.hgetall(self._keys.staff_member(username)))
        if not raw.get("role") or not self._matches(raw.get("hash", ""), old):
            raise LoginRefused("the current password is wrong", field="old_password")
        check_password(new)
        if new == old:
            raise InvalidField("password", "the new password is the old one")
        self._redis.hset(self._keys.staff_member(username), mapping={
            "hash": self._hasher.hash(new), "must_change": "0",
            "changed_at": repr(self._clock())})
        return self.get(username)

    def enable_totp(self, username: str) -> tuple[Staff, str]:
        """Give the account a TOTP secret; return it as an otpauth:// URI for an app."""
        self.get(username)
        secret = pyotp.random_base32(32)
        self._redis.hset(self._keys.staff_member(username),
                         mapping={"totp": self._seal(username, secret), "totp_step": "0"})
        uri = pyotp.TOTP(secret).provisioning_uri(name=f"{username}@{self.tenant}",
                                                  issuer_name=TOTP_ISSUER)
        return self.get(username), uri

    def disable_totp(self, username: str) -> Staff:
        self.get(username)
        self._redis.hdel(self._keys.staff_member(username), "totp", "totp_step")
        return self.get(username)

    # -- logging in --------------------------------------------------------------------
    def authenticate(self, username: str, password: str, totp: str | None = None) -> Staff:
        """Return the account if the password (and TOTP code) are right, else ``LoginRefused``.

        Every refusal but a lock-out says the same, so a guess learns nothing
        about which usernames exist or which part was wrong.
        """
        now = self._clock()
        key = self._keys.staff_member(username) if USERNAME.fullmatch(username or "") else None
        raw = _decode(self._redis.hgetall(key)) if key else {}
        if not raw.get("role"):
            self._matches(_dummy_hash(), password or "")  # as slow as a real refusal
            raise LoginRefused("wrong username or password")
        staff = self._staff(username, raw)
        if staff.locked(now):
            raise LoginRefused("too many failed log-ins: the account is locked for"
                               f" {LOCK_SECONDS // 60} minutes, or until a manager resets it")
        if not self._matches(raw.get("hash", ""), password or ""):
            self._fail(key, now)
            raise LoginRefused("wrong username or password")
        if staff.disabled:
            raise LoginRefused("wrong username or password")
        if staff.totp:
            self._check_totp(username, raw, totp, key, now)
        if self._hasher.check_needs_rehash(raw["hash"]):
            self._redis.hset(key, "hash", self._hasher.hash(password))
        self._redis.hset(key, mapping={"failures": "0", "locked_until": "0"})
        return self.get(username)

    def _check_totp(self, username: str, raw: dict, code: str | None, key: str,
                    now: float) -> None:
        code = (code or "").strip().replace(" ", "")
        if not code:
            raise LoginRefused("enter the 6-digit code from your authenticator app", field="totp")
        totp = pyotp.TOTP(self._open(username, raw["totp"]))
        step = int(now // totp.interval)
        used = int(raw.get("totp_step") or 0)
        for candidate in (step - 1, step, step + 1):  # one step of clock drift either way
            if candidate > used and totp.verify(code, for_time=candidate * totp.interval):
                self._redis.hset(key, "totp_step", str(candidate))  # each code works once
                return
        self._fail(key, now)
        raise LoginRefused("the code is wrong or was used already", field="totp")

    def _fail(self, key: str, now: float) -> None:
        failures = self._redis.hincrby(key, "failures", 1)
        if failures >= MAX_FAILURES:
            self._redis.hset(key, mapping={"locked_until": repr(now + LOCK_SECONDS),
                                           "failures": "0"})

    def _matches(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _context(self, username: str) -> bytes:
        return f"itemseal/staff-totp/{self.tenant}/{username}".encode()

    def _seal(self, username: str, secret: str) -> str:
        if self._master is None:
            raise RequestError("TOTP needs the master key: it seals the secret")
        record = self._master.seal_record(secret.encode(), self._context(username),
                                          self._randbytes(12))
        return json.dumps(record)

    def _open(self, username: str, sealed: str) -> str:
        if self._master is None:
            raise RequestError("TOTP needs the master key: it opens the secret")
        return self._master.open_record(json.loads(sealed), self._context(username),
                                        f"the TOTP secret of {username!r}").decode()


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown usernames against, so they cost as much as known ones."""
    return PasswordHasher().hash("itemseal: no such user")
