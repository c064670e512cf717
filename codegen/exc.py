"""Errors of code minting and the key ring, each with a message a user can act on."""

from __future__ import annotations


class CodegenError(Exception):
    """Root of every expected failure in codegen; the CLI shows its message, no traceback."""


class BadTenantId(CodegenError):
    """A tenant id must be usable inside Redis hash tags and URLs."""


class UnknownTenant(CodegenError):
    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"unknown tenant {tenant!r}: create it with `itemseal tenant create {tenant}`"
        )
        self.tenant = tenant


class TenantExists(CodegenError):
    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} already exists")
        self.tenant = tenant


class MasterKeyError(CodegenError):
    """The master key that encrypts tenant keys is missing, malformed or wrong."""


class UnknownKey(CodegenError):
    def __init__(self, tenant: str, key_id: int) -> None:
        super().__init__(f"tenant {tenant!r} has no key with id {key_id}")
        self.tenant = tenant
        self.key_id = key_id


class KeyRevoked(CodegenError):
    def __init__(self, tenant: str, key_id: int) -> None:
        super().__init__(
            f"key {key_id} of tenant {tenant!r} is revoked: rotate to a new key first"
            f" (`itemseal key rotate --tenant {tenant}`)"
        )
        self.tenant = tenant
        self.key_id = key_id


class KeySlotsExhausted(CodegenError):
    """Every key id a code can carry is taken."""


class UnknownProfile(CodegenError):
    pass


class ProductError(CodegenError):
    """A product that cannot be stored as given (SKU, GTIN, points)."""


class UnknownProduct(ProductError):
    def __init__(self, tenant: str, sku: str) -> None:
        super().__init__(
            f"tenant {tenant!r} has no product {sku!r}:"
            f" add it with `itemseal product add --tenant {tenant} --sku {sku} ...`"
        )
        self.tenant = tenant
        self.sku = sku


class ProductExists(ProductError):
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
