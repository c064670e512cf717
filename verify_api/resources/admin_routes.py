"""Every admin route, with the middleware that authorises them (``admin.AdminAuth``).

Apart from ``admin.py`` so the resource modules import their base without a
cycle: they import ``admin``, and only this module imports them.
"""

from __future__ import annotations

import falcon

from verify_api.resources import (
    admin_batches,
    admin_care,
    admin_catalog,
    admin_members,
    admin_reports,
)
from verify_api.resources.admin import ADMIN, AdminAuth, AdminContext


def register(app: falcon.App, ctx: AdminContext) -> None:
    """Add the admin routes and their middleware to ``app``."""
    app.add_middleware(AdminAuth(ctx.tokens))
    for module in (admin_catalog, admin_batches, admin_members, admin_reports, admin_care):
        for path, resource in module.routes(ctx):
            app.add_route(ADMIN + path, resource)
