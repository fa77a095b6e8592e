"""Real Celery worker processes for tests that kill them: started in their own session, over the configured
broker and the test database."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The test database (pytest-django's test_<name> on Postgres, the test file on SQLite) as a URL."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_start(*, app: str, queue: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """``celery -A app worker -Q queue`` (prefork, one child) against the test's database, media and broker."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "TANDEM_VAR_DIR": str(settings.VAR_DIR),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "SECRET_KEY": settings.SECRET_KEY,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "--concurrency", "1",
         "--loglevel", "INFO", "-n", f"doomed-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
