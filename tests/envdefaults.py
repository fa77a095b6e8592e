"""Loaded with ``-p`` before Django's settings are read: test-only defaults.

The settings refuse to start without SECRET_KEY outside debug; tests run with a
throwaway key instead of turning debug on (which changes behaviour).
"""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "tandem-tests-only-not-a-secret")
# Tests keep their SQLite file, media and broker folders apart from a running demo's.
os.environ.setdefault("TANDEM_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
