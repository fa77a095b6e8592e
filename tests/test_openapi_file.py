"""The OpenAPI schema kept in the repo (the contract clients are generated from)
must match what the code serves. Regenerate with ``make schema``."""

from pathlib import Path

from django.core.management import call_command

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "openapi.yaml"


def test_the_committed_openapi_schema_matches_the_code(tmp_path):
    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(generated))
    assert SCHEMA_FILE.exists(), "openapi.yaml is missing: run `make schema`"
    assert generated.read_text() == SCHEMA_FILE.read_text(), "openapi.yaml is stale: run `make schema`"
