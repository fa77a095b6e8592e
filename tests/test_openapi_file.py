"""The OpenAPI schema kept in the repo (the contract clients are generated from)
must match what the code serves. Regenerate with ``make schema``."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "openapi.yaml"


def test_the_committed_openapi_schema_matches_the_code(tmp_path):
    # Generated as `make schema` does, on the embedded default database: integer
    # bounds in the schema follow the database backend's column ranges.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DEBUG")}
    env.update(SECRET_KEY="schema-only", TANDEM_VAR_DIR=str(tmp_path))
    generated = tmp_path / "openapi.yaml"
    subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(generated)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    assert SCHEMA_FILE.exists(), "openapi.yaml is missing: run `make schema`"
    assert generated.read_text() == SCHEMA_FILE.read_text(), "openapi.yaml is stale: run `make schema`"
