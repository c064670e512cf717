"""Admin routes for batches: list, show, activate (operators) and recall (managers).

Minting stays in the CLI (it writes large files on the operator's machine);
the lifecycle goes through ``BatchRegistry.transition``, like ``itemseal batch``.
"""

from __future__ import annotations

from codegen.batches import ACTIVE, RECALLED, Batch, BatchRegistry
from codegen.times import iso
from verify_api.resources.admin import AdminContext, AdminResource

STAMPS = ("activated_at", "recalled_at")


def batch_json(batch: Batch) -> dict:
    record = {
        "batch_id": batch.batch_id, "sku": batch.sku, "state": batch.state,
        "count": batch.count, "first_serial": batch.first_serial, "key_id": batch.key_id,
        "profile": batch.profile.name, "created_at": iso(batch.created_at),
    }
    for stamp in STAMPS:
        record[stamp] = iso(batch.fields.get(stamp))
    return record


class Batches(AdminResource):
    actions = {"GET": "batches.read"}

    def on_get(self, req, resp, tenant: str) -> None:
        found = BatchRegistry(self.ctx.client, tenant, clock=self.ctx.clock).list()
        resp.media = {"batches": [batch_json(b) for b in found]}


class BatchOne(AdminResource):
    actions = {"GET": "batches.read"}

    def on_get(self, req, resp, tenant: str, batch_id: str) -> None:
        resp.media = batch_json(BatchRegistry(self.ctx.client, tenant).get(batch_id))


class BatchTransition(AdminResource):
    """``POST .../batches/{id}/activate`` or ``/recall``: one lifecycle step, audited."""

    def __init__(self, ctx: AdminContext, target: str, action: str) -> None:
        super().__init__(ctx)
        self.target = target
        self.actions = {"POST": action}

    def on_post(self, req, resp, tenant: str, batch_id: str) -> None:
        registry = BatchRegistry(self.ctx.client, tenant, clock=self.ctx.clock)
        before = batch_json(registry.get(batch_id))
        _, batch = registry.transition(batch_id, self.target)
        after = batch_json(batch)
        self.ctx.audit(req, tenant, f"batch.{self.actions['POST'].split('.')[1]}",
                       f"batch/{batch_id}", before, after)
        resp.media = after


def routes(ctx: AdminContext) -> list[tuple[str, AdminResource]]:
    return [
        ("/batches", Batches(ctx)),
        ("/batches/{batch_id}", BatchOne(ctx)),
        ("/batches/{batch_id}/activate", BatchTransition(ctx, ACTIVE, "batches.activate")),
        ("/batches/{batch_id}/recall", BatchTransition(ctx, RECALLED, "batches.recall")),
    ]
