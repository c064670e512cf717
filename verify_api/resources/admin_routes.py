"""Every admin route, with the middleware that authorises them (``admin.AdminAuth``).

Apart from ``admin.py`` so the resource modules import their base without a
cycle: they import ``admin``, and only this module imports them.

Admin responders are synchronous: they drive the same stores as the CLI
(redis-py). On the ASGI app each runs in the thread pool
(``resources.Threaded``), never on the event loop the consumer routes share.
"""

from __future__ import annotations

import falcon
import falcon.asgi

from verify_api.resources import (
    Threaded,
    admin_batches,
    admin_care,
    admin_catalog,
    admin_members,
    admin_purchases,
    admin_reports,
    admin_rewards,
)
from verify_api.resources.admin import ADMIN, AdminAuth, AdminContext


def register(app: falcon.asgi.App, ctx: AdminContext) -> None:
    """Add the admin routes and their middleware to ``app``."""
    app.add_middleware(AdminAuth(ctx.tokens))
    for module in (admin_catalog, admin_batches, admin_members, admin_reports, admin_care,
                   admin_rewards, admin_purchases):
        for path, resource in module.routes(ctx):
            app.add_route(ADMIN + path, Threaded(resource))
    for path, resource in admin_purchases.till_routes(ctx):  # the cashier's, for the POS
        app.add_route(path, Threaded(resource))
