"""Shared set-up of the channel tests: a tenant with an SMS number, a secret, a batch, a product."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
from falcon import testing

from codegen.products import ProductStore
from verify_api.app import create_app
from verify_api.channels.config import ChannelStore
from verify_api.channels.signatures import itemseal_signature, twilio_signature

NUMBER = "106570216001"
SECRET = "s3cret-gateway-token-0001"
HOST = testing.helpers.DEFAULT_HOST


@dataclass
class World:
    client: testing.TestClient
    app: object
    code: object  # i -> code digits of the active batch
    channels: ChannelStore
    redis: object
    key_store: object
    batch: object

    def twilio(self, path: str = "/v1/sms/twilio", secret: str = SECRET, sign: bool = True,
               **form: str) -> testing.Result:
        params = list(form.items())
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if sign:
            headers["X-Twilio-Signature"] = twilio_signature(secret, f"http://{HOST}{path}", params)
        return self.client.simulate_post(path, body=urlencode(params), headers=headers)

    def sms(self, body: str, sender: str = "+8613800138000", sid: str | None = None,
            to: str = NUMBER) -> testing.Result:
        form = {"From": sender, "To": to, "Body": body, "AccountSid": "AC1", "NumMedia": "0"}
        if sid:
            form["MessageSid"] = sid
        return self.twilio(**form)

    def json(self, path: str, data: object, secret: str = SECRET, sign: bool = True):
        body = orjson.dumps(data)
        headers = {"Content-Type": "application/json"}
        if sign:
            headers["X-Itemseal-Signature"] = itemseal_signature(secret, body)
        return self.client.simulate_post(path, body=body, headers=headers)


def make_world(batch_factory, redis_client, clock, language: str = "zh", **settings) -> World:
    batch, key_store = batch_factory("ACME", count=200, sku="LIP-001")
    ProductStore(redis_client).add(
        "ACME", "LIP-001", name="Velvet lipstick", points=10,
        description="A matte lipstick that lasts all day.", usage="Apply to clean lips.",
    )  # fmt: skip
    channels = ChannelStore(redis_client, key_store.master)
    channels.update("ACME", sms_number=NUMBER, gateway_secret=SECRET, language=language,
                    **settings)
    app = create_app(redis_client, key_store, clock=clock, key_cache_seconds=0, catalog_seconds=0)
    signer = key_store.signer("ACME", batch.key_id, batch.profile)
    return World(testing.TestClient(app), app, lambda i: signer.code(batch.first_serial + i),
                 channels, redis_client, key_store, batch)
