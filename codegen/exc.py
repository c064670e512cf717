"""The one exception root, and the errors of minting, tenants, keys, products and batches.

Every expected failure anywhere in itemseal is an ``ItemsealError`` (itsdangerous
``BadData``): it carries the HTTP ``status`` and machine-readable ``code`` the
API answers with, so the HTTP edge maps all of them with one falcon handler and
the CLI shows all of them with one ``except``, as one line. Messages quote the
input with ``!r`` and never carry a secret.
"""

from __future__ import annotations


class ItemsealError(Exception):
    """Root of every expected failure; anything else reaching the edge is a bug (500)."""

    status = 500
    code = "internal"
    public = True
    """False where the message is for the operator only; the API then says ``public_message``."""
    public_message = "internal error"

    def headers(self) -> dict[str, str]:
        """Extra HTTP response headers this failure asks for (Retry-After ...)."""
        return {}


class NotFoundError(ItemsealError):
    """The thing named does not exist (or is another tenant's)."""

    status = 404
    code = "not_found"


class ConflictError(ItemsealError):
    """The request clashes with the current state (exists, closed, insufficient)."""

    status = 409
    code = "conflict"


class StoreError(ItemsealError):
    """Redis could not be reached or failed; the API answers 503, never 500.

    The message names the socket path or URL, for the operator's log and CLI;
    the API says only ``public_message`` (no paths to anonymous callers).
    """

    status = 503
    code = "store_unavailable"
    public = False
    public_message = "the store is unavailable"


class EmbeddedStoreError(StoreError):
    """The embedded redis-server could not be started, found or stopped."""


class BackupError(StoreError):
    """A backup, restore, check or standby step failed; the message says what and why."""


class ReplicaTimeout(StoreError):
    """Fewer replicas than ``ITEMSEAL_REPLICAS`` acknowledged a write in time: not acknowledged."""


class CodegenError(ItemsealError):
    """An expected failure of minting, tenants, keys, products or batches."""

    status = 422
    code = "invalid"


class BadTenantId(CodegenError):
    """A tenant id must be usable inside Redis hash tags and URLs."""

    status = 404
    code = "unknown_tenant"


class UnknownTenant(CodegenError):
    """No such tenant. The operator's message names the command that creates it;
    anonymous API callers get only ``public_message``: no operator hints."""

    status = 404
    code = "unknown_tenant"
    public = False
    public_message = "unknown tenant"

    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"unknown tenant {tenant!r}: create it with `itemseal tenant create {tenant}`"
        )
        self.tenant = tenant


class TenantExists(ConflictError, CodegenError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} already exists")
        self.tenant = tenant


class StoreUrlError(CodegenError):
    """ITEMSEAL_REDIS_URL is not a Redis URL itemseal can use.

    Said once, in one line, where the client is built (``codegen.store.embedded.connect``);
    the API never shows the URL (it may carry a password or a socket path).
    """

    status = 503
    code = "store_unavailable"
    public = False
    public_message = "the store is unavailable"


class FileError(CodegenError):
    """A file named on the command line that cannot be read or written as asked:
    a missing folder, a file that is not Parquet, bytes that are not UTF-8 text."""

    code = "bad_file"

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{str(path)!r}: {reason}")
        self.path = path
        self.reason = reason


class MasterKeyError(CodegenError):
    """The master key that encrypts tenant keys is missing, malformed or wrong."""

    status = 503
    code = "keys_unavailable"
    public = False
    public_message = "the service cannot open its keys"


class UnknownKey(NotFoundError, CodegenError):
    def __init__(self, tenant: str, key_id: int) -> None:
        super().__init__(f"tenant {tenant!r} has no key with id {key_id}")
        self.tenant = tenant
        self.key_id = key_id


class KeyRevoked(ConflictError, CodegenError):
    def __init__(self, tenant: str, key_id: int) -> None:
        super().__init__(
            f"key {key_id} of tenant {tenant!r} is revoked: rotate to a new key first"
            f" (`itemseal key rotate --tenant {tenant}`)"
        )
        self.tenant = tenant
        self.key_id = key_id


class KeySlotsExhausted(ConflictError, CodegenError):
    """Every key id a code can carry is taken."""


class ProductError(CodegenError):
    """A product that cannot be stored as given (SKU, GTIN, points)."""


class UnknownProduct(NotFoundError, ProductError):
    def __init__(self, tenant: str, sku: str) -> None:
        super().__init__(
            f"tenant {tenant!r} has no product {sku!r}:"
            f" add it with `itemseal product add --tenant {tenant} --sku {sku} ...`"
        )
        self.tenant = tenant
        self.sku = sku


class ProductExists(ConflictError, ProductError):
    def __init__(self, tenant: str, sku: str) -> None:
        super().__init__(f"tenant {tenant!r} already has product {sku!r}: use `product set`")
        self.tenant = tenant
        self.sku = sku


class MintError(CodegenError):
    """A mint or export that cannot be done as asked (count, output file)."""


class BadOutput(MintError):
    """The output path cannot be written (no such directory)."""


class OutputExists(BadOutput):
    """The output file exists and --force was not given."""


class BatchError(ConflictError, CodegenError):
    """A batch operation that cannot be done as asked."""


class UnknownBatch(NotFoundError, BatchError):
    def __init__(self, tenant: str, batch_id: str) -> None:
        super().__init__(f"tenant {tenant!r} has no batch {batch_id!r}")


class SerialsExhausted(BatchError):
    pass


class WorkerFailed(CodegenError):
    """A worker process died or raised; its traceback is in the message."""

    status = 500
    code = "mint_failed"


class WeakSecret(CodegenError):
    """A secret shorter than the one minimum length (``codegen.keys.MIN_SECRET_CHARS``)."""

    code = "invalid_setting"
