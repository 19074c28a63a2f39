"""schemathesis against the served OpenAPI document: every operation, with no token and
with read, write and read+write tokens, answers no 5xx and nothing the schema forbids."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.unit.service.api.conftest import BOTH, READ, VERDICT, WRITE, Api

CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)


@pytest.mark.parametrize(
    "token", [None, READ, WRITE, BOTH, VERDICT], ids=["none", "read", "write", "both", "verdict"]
)
def test_every_operation_conforms_to_the_served_schema(sqlite_api: Api, token: str | None) -> None:
    # One database kind bounds the run; the routes are the same on both.
    api = sqlite_api
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:

        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={**(case.headers or {}), **headers}, checks=CHECKS)

        conforms()
