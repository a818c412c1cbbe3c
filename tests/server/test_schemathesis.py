"""Property-based tests over the app's own OpenAPI schema (in-process ASGI): generated requests
never get a 5xx, and every response matches the schema (status, content type, body).

Driven through schemathesis's Python API with hypothesis directly: its pytest plugin
(`schemathesis.pytest.from_fixture`) does not work with the pytest 9 this project uses."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.auth.keys import hash_api_key
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings

EXAMPLES = 25
# With auth configured, schemathesis also checks that the operations the schema marks as
# secured refuse missing and invalid credentials.
API_KEY = "schemathesis-" + "Qm7xT2vK9pL4wR8n"


@pytest.fixture(scope="module")
def api_schema(scifact_engine: SearchEngine) -> Any:
    settings = Settings(api_key_hashes=[hash_api_key(API_KEY)])
    app = create_app(settings, FixedEngineProvider(scifact_engine))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # Text fields refuse a NUL (athenaeum.retrieval.text; tests/server/test_text_fields.py holds
    # that), which JSON Schema's `string` does not say: no NUL in data meant to be accepted.
    schema.config.generation.update(allow_x00=False)
    return schema


def test_every_operation_conforms_to_the_schema(api_schema: Any) -> None:
    tested = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same examples every run, so a failure reproduces
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {API_KEY}"},
                excluded_checks=[positive_data_acceptance],
            )
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            # Schema-valid data is refused only in the filter, for what JSON Schema cannot say:
            # a page range that ends before it starts, a document or metadata field this index
            # does not have (docs/api.md, filters). Any other refusal of schema-valid data
            # fails, as schemathesis's own check would.
            if response.status_code in (400, 422):
                error = response.json()["error"]
                assert response.status_code == 400, (case.as_curl_command(), response.text)
                assert (error["param"] or "").startswith("filter"), (
                    case.as_curl_command(),
                    response.text,
                )

        check()
        tested.append(operation.label)
    assert "POST /search" in tested and "POST /v1/chat/completions" in tested
    assert len(tested) == 13  # every operation in the schema was exercised
