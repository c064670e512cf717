"""schemas/openapi.yaml is a valid OpenAPI document (openapi-spec-validator), 429s say when."""

from __future__ import annotations

from importlib import resources

import yaml
from openapi_spec_validator import validate


def spec() -> dict:
    return yaml.safe_load(resources.files("schemas").joinpath("openapi.yaml").read_text())


def test_the_spec_is_valid_openapi():
    validate(spec())


def test_every_429_documents_retry_after():
    document = spec()
    shared = document["components"]["responses"]
    found = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            response = operation.get("responses", {}).get("429")
            if response is None:
                continue
            found += 1
            if "$ref" in response:
                response = shared[response["$ref"].rsplit("/", 1)[1]]
            assert "Retry-After" in response.get("headers", {}), (method, path)
    assert found >= 5
