"""Validate responses against schemas/openapi.yaml (helper for the API tests)."""

from __future__ import annotations

import jsonschema

from verify_api.app import openapi_spec


def response_schema(template: str, method: str, status: int) -> dict | None:
    """Return the JSON schema of one documented response, or raise if undocumented."""
    spec = openapi_spec()
    operation = spec["paths"][template][method.lower()]
    response = operation["responses"][str(status)]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    content = response.get("content", {})
    if "application/json" not in content:
        return None
    return content["application/json"]["schema"]


def validate(template: str, method: str, status: int, body: object) -> None:
    """Raise unless ``body`` is what the spec promises for this route and status."""
    schema = response_schema(template, method, status)
    if schema is None:
        return
    document = {"components": openapi_spec()["components"], **schema}
    jsonschema.Draft202012Validator(
        document, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(body)
