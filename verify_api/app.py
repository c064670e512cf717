"""The verification HTTP API, a falcon ASGI app: ``create_app`` builds it from what it is given.

As in falcon's *look* example, everything the app touches comes in through
the factory: the Redis client (for the synchronous admin routes, which run in
the thread pool), the asyncio link (for the consumer routes, coroutines end to
end), the key store, the clock. Tests pass their own (a real redis-server, a
clock they move by hand); ``asgi.py`` passes the configured ones. Errors are
mapped here, once: every ``ItemsealError`` carries its status and code, and
every error body is ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from importlib import resources

import falcon
import falcon.asgi
import orjson
import redis
import yaml

from codegen.exc import ItemsealError
from codegen.keys import KeyStore
from codegen.store.wire import Link, link_for
from verify_api import proxies
from verify_api.admin.auth import TokenStore
from verify_api.check.engine import VerifyEngine
from verify_api.metrics import STARTED, Metrics, MetricsMiddleware
from verify_api.resources import admin, admin_dashboard, admin_routes, office_routes
from verify_api.resources import channels as channel_resources
from verify_api.resources.service import (
    HealthResource,
    MetricsResource,
    OpenApiResource,
    PingResource,
)
from verify_api.resources.verify import BatchResource, CodeResource, VerifyResource

log = logging.getLogger(__name__)
TENANT = "/v1/tenants/{tenant}"


class VerifyApp(falcon.asgi.App):
    """The falcon ASGI app, with its engine in reach of tests and the benchmark.

    Each HTTP request's scope is first seen through ``proxies.apply_to_scope``:
    behind a trusted proxy the client, scheme and host are the ones the proxy
    saw, and forwarded headers from anyone else are dropped.
    """

    engine: VerifyEngine
    office: object
    trusted_proxies: tuple = ()

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http":
            scope = proxies.apply_to_scope(scope, self.trusted_proxies)
            scope[STARTED] = time.perf_counter()  # MetricsMiddleware's clock
        await super().__call__(scope, receive, send)


class LinkLifespan:
    """Close the worker's Redis link when the server shuts the app down."""

    def __init__(self, link: Link) -> None:
        self._link = link

    async def process_shutdown(self, scope, event) -> None:
        await self._link.aclose()


def create_app(
    client: redis.Redis,
    key_store: KeyStore,
    *,
    clock: Callable[[], float] = time.time,
    link: Link | None = None,
    key_cache_seconds: float = 2.0,
    catalog_seconds: float = 5.0,
    metrics: Metrics | None = None,
    metrics_token: str | None = None,
    trusted_proxies: str | Iterable[str] = (),
    gs1_tenants: str = "",
) -> VerifyApp:
    """Build the ASGI app; ``link`` defaults to a pipelined asyncio link to ``client``'s server.

    ``trusted_proxies``: CIDRs whose forwarded headers are believed (``proxies.py``);
    ``gs1_tenants``: which tenant answers GS1 Digital Link paths (``channels.gs1_tenant_map``).
    """
    metrics = metrics or Metrics()
    link = link or link_for(client)
    engine = VerifyEngine(
        link,
        key_store,
        clock=clock,
        key_cache_seconds=key_cache_seconds,
        catalog_seconds=catalog_seconds,
        on_result=metrics.count_result,
    )
    app = VerifyApp(middleware=[MetricsMiddleware(metrics), LinkLifespan(link)])
    json_handler = falcon.media.JSONHandler(dumps=orjson.dumps, loads=orjson.loads)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.add_route(f"{TENANT}/verify", VerifyResource(engine))
    app.add_route(f"{TENANT}/verify:batch", BatchResource(engine))
    app.add_route(f"{TENANT}/codes/{{code}}", CodeResource(engine))
    app.trusted_proxies = proxies.parse_networks(trusted_proxies)
    _add_channel_routes(app, client, link, engine, key_store, clock, gs1_tenants)
    app.add_route("/v1/ping", PingResource())
    app.add_route("/healthz", HealthResource(engine))
    app.add_route("/metrics", MetricsResource(metrics, metrics_token))
    app.add_route("/openapi.json", OpenApiResource(openapi_document()))
    admin_context = admin.AdminContext(client, key_store, TokenStore(client, clock=clock), clock)
    admin_routes.register(app, admin_context)
    admin_dashboard.register(app, admin_context)
    app.office = office_routes.register(app, client, key_store, clock)
    app.add_error_handler(ItemsealError, _itemseal_error)
    app.add_error_handler(redis.RedisError, _redis_error)
    app.set_error_serializer(_serialize_http_error)
    app.engine = engine
    return app


def _add_channel_routes(
    app: falcon.asgi.App, client: redis.Redis, link: Link, engine: VerifyEngine,
    key_store: KeyStore, clock, gs1_tenants: str = "",
) -> None:
    """SMS gateways, the keypad and the verify page (``verify_api/channels/``)."""
    from points_bridge.rewards import RewardStore
    from verify_api.channels import csrf
    from verify_api.channels.config import ChannelDirectory, ChannelStore
    from verify_api.channels.sms import SmsService
    from verify_api.resources import Threaded
    from verify_api.resources.member_page import MemberPage

    channels = ChannelStore(client, key_store.master)
    sms = SmsService(link, engine, ChannelDirectory(link, channels), clock=clock,
                     rewards=lambda tenant: RewardStore(client, tenant, key_store=key_store,
                                                        clock=clock))
    app.add_route("/v1/sms/twilio", channel_resources.TwilioSmsResource(sms))
    app.add_route("/v1/sms/aliyun", channel_resources.JsonSmsResource(sms, "aliyun"))
    app.add_route("/v1/sms/tencent", channel_resources.JsonSmsResource(sms, "tencent"))
    app.add_route("/v1/sms/aliyun/{token}",
                  channel_resources.GatewayCallbackResource(sms, "aliyun"))
    app.add_route("/v1/sms/tencent/{token}",
                  channel_resources.GatewayCallbackResource(sms, "tencent"))
    app.add_route("/v1/ivr/inbound", channel_resources.IvrResource(engine, sms))
    app.add_route(f"{TENANT}/sms/receipts",
                  Threaded(channel_resources.ReceiptResource(client, channels)))
    page = channel_resources.WebPageResource(
        engine, sms, csrf.secret_from(key_store.master), clock
    )
    app.add_route("/t/{tenant}/v/{code}", page)
    app.add_route("/t/{tenant}/v", channel_resources.WebEntryResource())
    gs1_links = channel_resources.Gs1LinkResource(page, gs1_tenants)
    app.add_route("/01/{gtin}/21/{serial}", gs1_links)
    app.add_route("/01/{gtin}/10/{lot}/21/{serial}", gs1_links, suffix="lot")
    member_page = Threaded(MemberPage(client, key_store, channels, clock))
    app.add_route("/m/{tenant}", member_page)
    for action in ("code", "login", "redeem", "logout"):
        app.add_route(f"/m/{{tenant}}/{action}", member_page, suffix=action)


@functools.cache
def openapi_spec() -> dict:
    """Return schemas/openapi.yaml as a dict (the single source of the API's contract)."""
    return yaml.safe_load(resources.files("schemas").joinpath("openapi.yaml").read_text())


def openapi_document() -> bytes:
    return orjson.dumps(openapi_spec())


def _error(resp: falcon.Response, status: int, code: str, message: str, **extra) -> None:
    resp.status = status
    resp.media = {"error": {"code": code, "message": message, **extra}}


async def _itemseal_error(
    req: falcon.Request, resp: falcon.Response, ex: ItemsealError, params
) -> None:
    """Every expected failure, as its status, code and (public) message."""
    extra = {"field": ex.field} if getattr(ex, "field", None) else {}
    for name, value in ex.headers().items():
        resp.set_header(name, value)
    if ex.status >= 500:
        log.warning("%s %s: %s", req.method, req.path, ex)
    _error(resp, ex.status, ex.code, str(ex) if ex.public else ex.public_message, **extra)


async def _redis_error(
    req: falcon.Request, resp: falcon.Response, ex: redis.RedisError, params
) -> None:
    log.warning("%s %s: redis: %s", req.method, req.path, ex)
    _error(resp, 503, "store_unavailable", f"the store is unavailable: {type(ex).__name__}")


def _serialize_http_error(
    req: falcon.Request, resp: falcon.Response, exception: falcon.HTTPError
) -> None:
    """falcon's own errors (404 route, 405 method, 500) in our error shape."""
    phrase = HTTPStatus(exception.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    message = exception.description or phrase
    resp.data = orjson.dumps({"error": {"code": code, "message": message}})
    resp.content_type = falcon.MEDIA_JSON
