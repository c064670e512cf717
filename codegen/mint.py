"""Mint a batch of signed codes into a printer file, or re-create a minted batch's file.

Minting: check everything that can be refused (tenant, product, count, output,
signing key) before touching the serial counter; reserve the serial range with
one atomic script; render the codes in worker processes (``workers``) while
this process writes them (``writer``); register the batch as ``minted`` and
only then publish the file under its final name, with its manifest beside it.
So a printer file on disk always belongs to a registered batch, and a batch
whose file was lost can be re-created from the key and its serial range
(``export``): codes are deterministic.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import redis

from codegen.batches import RECALLED, Batch, BatchRegistry
from codegen.codes import DEFAULT_PROFILE, Profile
from codegen.exc import MintError, OutputExists
from codegen.gs1 import link_template
from codegen.keys import KeyStore
from codegen.products import Product, ProductStore
from codegen.render import CODE_SLOT, TextLayout
from codegen.signing import CodeSigner
from codegen.tenants import Tenant, TenantStore
from codegen.workers import CHUNK_ROWS, ChunkProducer
from codegen.writer import (
    FORMATS,
    ROW_GROUP_ROWS,
    AtomicFile,
    BatchFile,
    check_output,
    remove_stale_temporaries,
    sha256_of,
    write_manifest,
)
from schemas.batch import COLUMNS, FORMAT_VERSION

Progress = Callable[[int], None]  # called with the number of codes written so far


def url_template(tenant: Tenant, product: Product, profile: Profile = DEFAULT_PROFILE) -> str:
    """The QR URL with ``{code}`` where the digits go, resolved for one batch.

    A product with a GTIN gets a GS1 Digital Link on the scheme and host of the
    tenant's verify URL (``https://HOST/01/GTIN14/21/SERIAL``: any GS1 scanner
    app reads product and serial); otherwise the tenant's own verify URL template.
    SERIAL is the code if it fits GS1's 20 characters, else its compact form
    (``codegen.gs1``, slot ``gs1.COMPACT_SLOT``).
    """
    if product.gtin:
        split = urlsplit(tenant.verify_url)
        base = f"{split.scheme or 'https'}://{split.netloc}"
        return link_template(base, product.gtin, profile.length, CODE_SLOT)
    marker = "\x00CODE\x00"
    try:
        url = tenant.url_for(marker)
    except (KeyError, IndexError, ValueError) as exc:
        url = f"{exc!r}"  # a placeholder other than {tenant} and {code}, or a stray brace
    if marker not in url:
        raise MintError(
            f"the verify URL of tenant {tenant.tenant_id!r}, {tenant.verify_url!r}, needs"
            " {code} (and may use {tenant}): fix it with `itemseal tenant set --verify-url`"
        )
    return url.replace(marker, CODE_SLOT)


@dataclass(frozen=True)
class MintResult:
    batch: Batch
    path: Path
    manifest: Path
    sha256: str
    size: int
    seconds: float

    @property
    def codes_per_second(self) -> float:
        return self.batch.count / self.seconds if self.seconds else float("inf")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise MintError(f"unknown file format {fmt!r}: use one of {', '.join(FORMATS)}")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Minter:
    """Mint and export batches of one store; ``workers=None`` means one per CPU."""

    def __init__(
        self,
        client: redis.Redis,
        key_store: KeyStore,
        *,
        clock: Callable[[], float] = time.time,
        chunk_rows: int = CHUNK_ROWS,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        self._redis = client
        self.key_store = key_store
        self._clock = clock
        self.tenants = TenantStore(client, clock=clock)
        self.products = ProductStore(client, clock=clock)
        self.chunk_rows = min(chunk_rows, row_group_rows)
        self.row_group_rows = row_group_rows

    def registry(self, tenant: str) -> BatchRegistry:
        return BatchRegistry(self._redis, tenant, clock=self._clock)

    def mint(
        self,
        tenant: str,
        sku: str,
        count: int,
        out: Path,
        *,
        profile: Profile = DEFAULT_PROFILE,
        workers: int | None = None,
        fmt: str = "parquet",
        force: bool = False,
        progress: Progress | None = None,
    ) -> MintResult:
        """Mint ``count`` codes of ``sku`` into ``out`` and register them as a batch."""
        owner = self.tenants.get(tenant)
        product = self.products.get(tenant, sku)
        template = url_template(owner, product, profile)
        if count <= 0:
            raise MintError(f"count must be a positive number of codes, got {count:,}")
        _check_format(fmt)
        out = Path(out).absolute()
        check_output(out, force=force)
        key = self.key_store.current(tenant)
        signer = self.key_store.signer(tenant, key.key_id, profile)
        registry = self.registry(tenant)
        first = registry.reserve(profile, count)
        batch_id = registry.next_batch_id()
        facts = self._facts(owner.tenant_id, batch_id, sku, signer, first, count)
        created_at = int(self._clock())  # whole seconds: the file's metadata carries no more
        facts.update(created_at=_iso(created_at), url_template=template)

        def register(sha256: str) -> Batch:
            return registry.register(
                batch_id,
                created_at=created_at,
                tenant=tenant,
                sku=sku,
                key_id=key.key_id,
                profile=profile.name,
                first_serial=first,
                count=count,
                file=str(out),
                format=fmt,
                sha256=sha256,
                url_template=template,
            )

        try:
            return self._write(signer, facts, out, fmt, force, workers, progress, register)
        except OutputExists as exc:  # only the final rename raises it here
            raise OutputExists(
                f"{exc}; batch {batch_id} is registered all the same: write its file elsewhere"
                f" with `itemseal batch export --tenant {tenant} {batch_id} --format {fmt}"
                " --out ...`"
            ) from None

    def export(
        self,
        tenant: str,
        batch_id: str,
        out: Path,
        *,
        fmt: str = "csv",
        workers: int | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> MintResult:
        """Re-create the file of a registered batch (same codes, same facts)."""
        batch = self.registry(tenant).get(batch_id)
        if batch.state == RECALLED:
            raise MintError(f"batch {batch_id} is recalled: its codes are not to be printed")
        if not self.key_store.info(tenant, batch.key_id).active:
            raise MintError(
                f"key {batch.key_id} of tenant {tenant!r} is revoked: the codes of batch"
                f" {batch_id} answer `revoked`, they are not to be printed"
            )
        _check_format(fmt)
        out = Path(out).absolute()
        check_output(out, force=force)
        signer = self.key_store.signer(tenant, batch.key_id, batch.profile)
        facts = self._facts(tenant, batch_id, batch.sku, signer, batch.first_serial, batch.count)
        template = batch.fields.get("url_template") or url_template(
            self.tenants.get(tenant), self.products.get(tenant, batch.sku), signer.profile
        )
        facts.update(created_at=_iso(batch.created_at), url_template=template)
        return self._write(signer, facts, out, fmt, force, workers, progress, lambda _: batch)

    @staticmethod
    def _facts(
        tenant: str, batch_id: str, sku: str, signer: CodeSigner, first: int, count: int
    ) -> dict[str, str]:
        return {
            "format_version": FORMAT_VERSION,
            "tenant": tenant,
            "batch_id": batch_id,
            "sku": sku,
            "key_id": str(signer.key_id),
            "profile": signer.profile.name,
            "count": str(count),
            "first_serial": str(first),
            "last_serial": str(first + count - 1),
        }

    def _write(
        self,
        signer: CodeSigner,
        facts: dict[str, str],
        out: Path,
        fmt: str,
        force: bool,
        workers: int | None,
        progress: Progress | None,
        register: Callable[[str], Batch],
    ) -> MintResult:
        started = time.monotonic()
        layout = TextLayout(signer.profile, facts["url_template"])
        remove_stale_temporaries(out)
        workers = (os.cpu_count() or 1) if workers is None else max(0, workers)
        per_group = -(-self.row_group_rows // self.chunk_rows)
        first, count = int(facts["first_serial"]), int(facts["count"])
        with AtomicFile(out, force=force) as target, ChunkProducer(
            signer, layout, first, count, workers=workers, chunk_rows=self.chunk_rows,
            held=per_group,
        ) as producer:  # fork the workers before pyarrow starts any thread
            with BatchFile(target.temp, fmt, facts) as sink:
                group = []
                for chunk in producer:
                    group.append(chunk)
                    if len(group) == per_group or chunk.index == producer.chunks_total - 1:
                        sink.write_group([sink.record_batch(c.seq, c.code, c.url) for c in group])
                        for written in group:
                            producer.release(written)
                        group.clear()
                        if progress:
                            progress(min(count, (chunk.index + 1) * producer.chunk_rows))
            target.sync()
            sha256 = sha256_of(target.temp)
            size = target.temp.stat().st_size
            batch = register(sha256)
            target.commit()
        manifest = write_manifest(out, self._manifest(facts, out, fmt, sha256, size))
        return MintResult(batch, out, manifest, sha256, size, time.monotonic() - started)

    @staticmethod
    def _manifest(facts: dict[str, str], out: Path, fmt: str, sha256: str, size: int) -> dict:
        manifest: dict[str, object] = dict(facts)
        for name in ("key_id", "count", "first_serial", "last_serial"):
            manifest[name] = int(facts[name])
        manifest.update(
            file=out.name, file_format=fmt, sha256=sha256, bytes=size, columns=list(COLUMNS)
        )
        if fmt == "parquet":
            manifest.update(compression="zstd", row_groups=pq.read_metadata(out).num_row_groups)
        return manifest
