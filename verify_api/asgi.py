"""What each uvicorn worker under gunicorn loads: the ASGI app, configured from the environment.

``itemseal serve`` resolves the store before starting gunicorn and passes it
as ITEMSEAL_REDIS_URL (the embedded server's unix socket, or the external URL),
so every worker connects to the same Redis and none starts one of its own.
The variables are read by the one ``codegen.config.Config``, as the CLI reads
them; this module does not import the CLI (and with it pyarrow and the minting
code) into every worker.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

from codegen.config import Config
from points_bridge import regions
from verify_api.app import VerifyApp, create_app
from verify_api.proxies import TRUSTED_PROXIES_ENV
from verify_api.resources.channels import GS1_TENANTS_ENV

METRICS_TOKEN_ENV = "ITEMSEAL_METRICS_TOKEN"


def app_from_env(env: Mapping[str, str] | None = None) -> VerifyApp:
    config = Config(env)
    return create_app(
        config.redis, config.key_store,
        metrics_token=config.env.get(METRICS_TOKEN_ENV) or None,
        trusted_proxies=config.env.get(TRUSTED_PROXIES_ENV, ""),
        gs1_tenants=config.env.get(GS1_TENANTS_ENV, ""),
    )


application = app_from_env()
regions.geocoder()  # ~1.5 s of data, loaded here rather than by a first join's request
# Everything loaded so far lives as long as the worker: take it out of the collector's
# view. A full collection over it stops the event loop ~15 ms (63k objects at start),
# which showed up as the open-loop p99 of benchmarks/bench_verify.py.
gc.freeze()
# A carton's look-up makes ~7 objects a code; at the default 700 allocations between young
# collections that is ~10 collections a carton, each walking the carton's live lists: 6% of a
# batch look-up's instructions (callgrind). 10,000 leaves a check's path as it was (measured)
# and holds at most that many more young objects between collections.
gc.set_threshold(10_000, *gc.get_threshold()[1:])
