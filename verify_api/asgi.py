"""What each uvicorn worker under gunicorn loads: the ASGI app, configured from the environment.

``itemseal serve`` resolves the store before starting gunicorn and passes it
as ITEMSEAL_REDIS_URL (the embedded server's unix socket, or the external URL),
so every worker connects to the same Redis and none starts one of its own.
The variables are those of ``codegen.config.Config``; this module does not
import the CLI (and with it pyarrow and the minting code) into every worker.
The app's asyncio link connects on the worker's event loop at its first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from codegen.keys import KeyStore, load_master_key
from codegen.store.embedded import connect
from verify_api.app import VerifyApp, create_app


def app_from_env(env: Mapping[str, str] | None = None) -> VerifyApp:
    env = os.environ if env is None else env
    home = Path(env.get("ITEMSEAL_HOME") or ".itemseal").absolute()
    client = connect(home, env.get("ITEMSEAL_REDIS_URL") or None)
    return create_app(client, KeyStore(client, load_master_key(home, env)))


application = app_from_env()
