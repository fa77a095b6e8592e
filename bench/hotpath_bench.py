"""The labelling hot path in one process: N ``next`` → ``submit`` cycles through the WSGI application, as gunicorn
calls it, with an API token — no network, no load generator, no server (issue 21).

What it prints:

- **SQL statements per request** of each call (the first cycle is left out: it warms the process's caches), and
  the statements themselves with ``--list``;
- **time per cycle**: wall and this process's CPU, and the database backend's CPU where it is a local Postgres
  (read from ``/proc``); the median of ``--repeats`` runs of ``--cycles`` cycles each;
- with ``--profile``, the functions that took the most time over one run (cProfile, cumulative).

```sh
# Postgres (the database is created if missing and its bench project reused)
.venv/bin/python bench/hotpath_bench.py --database-url postgres://postgres@127.0.0.1:5432/tandem_hotbench
# the embedded default: SQLite in a scratch folder
.venv/bin/python bench/hotpath_bench.py --sqlite
.venv/bin/python bench/hotpath_bench.py --sqlite --profile 25
```

The settings are production's (``DEBUG=0``, no ``CACHE_URL``: the token is read once, then cached in the process),
unless ``--no-token-cache`` reads it on every request (``TOKEN_CACHE_SECONDS=0``). Figures go to stdout,
and with ``--json`` to a file.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/tandem_hotbench"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    p.add_argument("--sqlite", action="store_true", help="the embedded default (SQLite) in a scratch folder")
    p.add_argument("--cycles", type=int, default=500, help="next → submit cycles per run")
    p.add_argument("--repeats", type=int, default=5, help="runs; the median is reported")
    p.add_argument("--no-token-cache", dest="token_cache", action="store_false", help="read the token on every request")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="profile one run; print the top N functions")
    p.add_argument("--sort", default="cumulative", help="the profile's order: cumulative or tottime")
    p.add_argument("--list", action="store_true", help="print each request's SQL statements")
    p.add_argument("--json", dest="json_path", help="write the figures to this file")
    return p.parse_args(argv)


def setup(args) -> None:
    env = {
        "DEBUG": "0",
        "SECRET_KEY": "hotpath-bench-" + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "testserver,localhost",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "TOKEN_CACHE_SECONDS": "60" if args.token_cache else "0",
    }
    if args.sqlite:
        scratch = tempfile.mkdtemp(prefix="hotpath-bench-")
        env["TANDEM_VAR_DIR"] = scratch
        os.environ.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = args.database_url
        env["TANDEM_VAR_DIR"] = str(ROOT / "var" / "bench")
        database_ensure(args.database_url)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def database_ensure(url: str) -> None:
    import psycopg

    u = urlparse(url)
    name = u.path.lstrip("/")
    admin = url.replace(u.path, "/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(cycles: int, repeats: int):
    """A text project with enough open pairwise comparisons for every run, one annotator with a token."""
    from django.contrib.auth import get_user_model

    from annotation import importers
    from annotation.authentication import token_for
    from annotation.models import Comparison, ComparisonStatus, Project, Role
    from annotation.projects import membership_set, project_create

    needed = (cycles + 1) * (repeats + 2) + 10
    owner, _ = get_user_model().objects.get_or_create(username="hotpath-owner")
    user, _ = get_user_model().objects.get_or_create(username=f"hotpath-{uuid.uuid4().hex[:8]}")
    project = Project.objects.filter(name="hotpath-bench").order_by("-id").first()
    if project is None or Comparison.objects.filter(project=project, status=ComparisonStatus.OPEN).count() < needed:
        project = project_create(created_by=owner, name="hotpath-bench", overlap=1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bundle.jsonl"
            with path.open("w") as f:
                for i in range(max(needed, 20_000)):
                    row = {
                        "id": f"p{i}",
                        "text": f"Prompt {i}: explain topic {i % 997} in plain words.",
                        "candidates": [{"text": f"Answer {j} to prompt {i}, in a sentence or two."} for j in (0, 1)],
                        "comparisons": "pairs",
                    }
                    f.write(json.dumps(row) + "\n")
            importers.import_file(project=project, kind="bundle", path=str(path))
    membership_set(project=project, user=user, role=Role.ANNOTATOR)
    return project, token_for(user=user)


class Client:
    """Calls the WSGI application as a server does: one environ per request, the body read from wsgi.input."""

    def __init__(self, token: str):
        from config.wsgi import application

        self.app = application
        self.auth = f"Token {token}"

    def call(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "localhost",
            "HTTP_ACCEPT": "application/json",
            "HTTP_AUTHORIZATION": self.auth,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if body:
            environ["CONTENT_TYPE"] = "application/json"
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        status = []
        chunks = self.app(environ, lambda s, h, exc_info=None: status.append(s))
        try:
            data = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return int(status[0][:3]), data

    def cycle(self, project_id: int) -> None:
        status, data = self.call("GET", f"/api/v1/projects/{project_id}/next/")
        if status != 200:
            raise SystemExit(f"next answered {status}: {data[:300]!r}")
        task = json.loads(data)
        body = json.dumps({"winner": task["candidates"][0]["id"]}).encode()
        status, data = self.call(
            "POST",
            f"/api/v1/comparisons/{task['comparison']}/judgments/",
            body,
            {"Idempotency-Key": uuid.uuid4().hex},
        )
        if status != 201:
            raise SystemExit(f"submit answered {status}: {data[:300]!r}")


def statements(client: Client, project_id: int) -> dict:
    """The SQL each call of one cycle sends (after a warm-up cycle)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.cycle(project_id)
    out = {}
    with CaptureQueriesContext(connection) as q:
        _, data = client.call("GET", f"/api/v1/projects/{project_id}/next/")
    out["next"] = [x["sql"] for x in q.captured_queries]
    task = json.loads(data)
    body = json.dumps({"winner": task["candidates"][0]["id"]}).encode()
    with CaptureQueriesContext(connection) as q:
        client.call(
            "POST", f"/api/v1/comparisons/{task['comparison']}/judgments/", body, {"Idempotency-Key": uuid.uuid4().hex}
        )
    out["submit"] = [x["sql"] for x in q.captured_queries]
    return out


def backend_pid() -> int | None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def proc_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(client: Client, project_id: int, cycles: int, pg_pid: int | None) -> dict:
    wall0, cpu0, pg0 = time.perf_counter(), time.process_time(), proc_cpu_s(pg_pid)
    for _ in range(cycles):
        client.cycle(project_id)
    wall, cpu, pg = time.perf_counter() - wall0, time.process_time() - cpu0, proc_cpu_s(pg_pid) - pg0
    return {"wall_ms": 1000 * wall / cycles, "cpu_ms": 1000 * cpu / cycles, "db_cpu_ms": 1000 * pg / cycles}


def main(argv=None) -> int:
    args = parse_args(argv)
    setup(args)
    from django.db import connection

    project, token = seed(args.cycles, args.repeats)
    client = Client(token)
    sql = statements(client, project.pk)
    load = os.getloadavg()
    print(
        f"{connection.vendor}, code at {git_head()}, {args.cycles} cycles × {args.repeats} runs, "
        f"token cache {'on' if args.token_cache else 'off'}, load average {load[0]:.1f}"
    )
    for name, queries in sql.items():
        print(f"  {name}: {len(queries)} SQL statements")
        if args.list:
            for q in queries:
                print("     ", " ".join(q.split())[:200])
    pg_pid = backend_pid()
    runs = [run(client, project.pk, args.cycles, pg_pid) for _ in range(args.repeats)]
    figures = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    spread = {k: (min(r[k] for r in runs), max(r[k] for r in runs)) for k in runs[0]}
    print(
        "  per cycle (median of runs; min–max): "
        + ", ".join(f"{k} {figures[k]:.2f} ({spread[k][0]:.2f}–{spread[k][1]:.2f})" for k in figures)
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(client, project.pk, args.cycles, None)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.profile)
        print(out.getvalue())
    if args.json_path:
        report = {
            "database": connection.vendor,
            "code": git_head(),
            "token_cache": args.token_cache,
            "cycles": args.cycles,
            "runs": runs,
            "median": figures,
            "statements": {k: len(v) for k, v in sql.items()},
            "sql": sql,
            "load_average": load,
        }
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    return 0


def git_head() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
