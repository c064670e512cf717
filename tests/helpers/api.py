"""The HTTP API through falcon's TestClient, every JSON answer checked against the spec."""

from __future__ import annotations

import orjson
from falcon import testing

from helpers.openapi_check import validate

VERIFY = "/v1/tenants/{tenant}/verify"
BATCH = "/v1/tenants/{tenant}/verify:batch"
CODES = "/v1/tenants/{tenant}/codes/{code}"


class Api:
    """A TestClient whose every answer is checked against the spec."""

    def __init__(self, app) -> None:
        self.app = app
        self.client = testing.TestClient(app)

    def request(self, method: str, template: str, path: str, **kw) -> testing.Result:
        result = self.client.simulate_request(method, path, **kw)
        if result.headers.get("content-type", "").startswith("application/json"):
            validate(template, method, result.status_code, result.json)
        return result

    def verify(self, body, tenant="ACME", **kw):
        if not isinstance(body, bytes | str):
            body = orjson.dumps(body)
        return self.request("POST", VERIFY, f"/v1/tenants/{tenant}/verify", body=body, **kw)

    def batch(self, body, tenant="ACME", **kw):
        body = orjson.dumps(body) if not isinstance(body, bytes) else body
        return self.request("POST", BATCH, f"/v1/tenants/{tenant}/verify:batch", body=body, **kw)

    def lookup(self, code, tenant="ACME", **kw):
        return self.request("GET", CODES, f"/v1/tenants/{tenant}/codes/{code}", **kw)


class AdminApi(Api):
    """The admin and till routes by template, with a bearer token."""

    def call(self, method, template, token=None, *, params=None, body=None, **values):
        path = template
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.request(method, template, path, headers=headers, params=params,
                            body=None if body is None else orjson.dumps(body))
