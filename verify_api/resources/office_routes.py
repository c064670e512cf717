"""Every office route (``/office`` and ``/office/{tenant}/...``), each in the thread pool.

Apart from ``office.py`` so the page modules import their base without a
cycle, as ``admin_routes.py`` does for the admin API.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import falcon.asgi
import redis

from codegen.keys import KeyStore
from verify_api.resources import (
    Threaded,
    office_auth,
    office_care,
    office_catalog,
    office_manage,
    office_members,
    office_rewards,
)
from verify_api.resources.office import OFFICE, OfficeContext


def register(app: falcon.asgi.App, client: redis.Redis, key_store: KeyStore,
             clock: Callable[[], float] = time.time) -> OfficeContext:
    """Add the office's routes to ``app``; return their context (tests reach its jobs)."""
    ctx = OfficeContext(client, key_store, clock)
    for module in (office_auth, office_members, office_care, office_manage, office_catalog,
                   office_rewards):
        for path, resource in module.routes(ctx):
            app.add_route(OFFICE + path, Threaded(resource))
    return ctx
