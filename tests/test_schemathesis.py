"""schemathesis over schemas/openapi.yaml against a real `itemseal serve` on a seeded store.

Every operation of the spec gets generated requests, valid and not; each
answer must not be a 5xx and must conform to the spec (status code, content
type, body schema). Half the cases are pointed at the seeded tenant, and its
real codes are put into the bodies and paths, so that answers with products,
scan counts and credited points are checked too, not only 404s.
"""

from __future__ import annotations

import pytest
import schemathesis
from helpers.crashkit import own_world
from helpers.homes import make_short_home
from helpers.serving import serving
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from verify_api.app import openapi_spec

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = list(schemathesis.GenerationMode)  # valid requests, and invalid ones
EXAMPLES = 100  # per operation: ~10,000 requests over ~110 operations, 3-4 minutes here


def aim(case, codes: list[str], data) -> None:
    """Point about half the cases at the seeded tenant and its real codes."""
    if "tenant" in (case.path_parameters or {}) and data.draw(st.booleans(), label="seeded"):
        case.path_parameters["tenant"] = "ACME"
        code = data.draw(st.sampled_from(codes), label="code")
        if "code" in case.path_parameters:
            case.path_parameters["code"] = code
        if isinstance(case.body, dict) and isinstance(case.body.get("code"), str):
            case.body["code"] = code
        if isinstance(case.body, dict) and isinstance(case.body.get("codes"), list):
            case.body["codes"] = [code, *case.body["codes"]][:1000]


@pytest.mark.slow
@pytest.mark.timeout(900)  # the suite's 300 s is too tight on a loaded 2-core machine
def test_every_operation_answers_per_the_spec(tmp_path):
    world = own_world(make_short_home(), count=200)
    schema = schemathesis.openapi.from_dict(openapi_spec())
    operations = [result.ok() for result in schema.get_all_operations()]
    seen: dict[str, set[int]] = {}
    try:
        with serving(world.env(), tmp_path / "serve.log") as (base, _):
            for operation in operations:
                label = f"{operation.method.upper()} {operation.path}"

                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))  # fmt: skip
                @given(case=st.one_of(*[operation.as_strategy(mode) for mode in MODES]),
                       data=st.data())  # fmt: skip
                def check(case, data) -> None:
                    aim(case, world.codes, data)
                    response = case.call_and_validate(base_url=base, checks=CHECKS, timeout=10)
                    seen.setdefault(label, set()).add(response.status_code)  # noqa: B023

                check()
    finally:
        world.close()
    assert set(seen) == {f"{o.method.upper()} {o.path}" for o in operations}
    verify = seen["POST /v1/tenants/{tenant}/verify"]
    assert 200 in verify and {400, 404, 422} & verify, seen  # both real data and refusals
