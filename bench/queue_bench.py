"""Queue benchmark: next → submit against a real gunicorn + Postgres (DESIGN §4).

Prints figures; it is not a test.

Workload
--------
1. **Seed** (or reuse) a Postgres project of N comparisons (default 1,000,000)
   through the real import path: a generated JSONL "bundle" file (one prompt with
   K candidates per line, ``"comparisons": "pairs"``) fed to
   ``annotation.importers.import_file``. The import rate (comparisons/s) is
   reported, then the annotation tables are VACUUM ANALYZEd. A project with the
   same (N, K, overlap) is reused unless ``--reseed``; its queue state
   (judgments, leases, counters) is reset before every run.
2. **EXPLAIN (ANALYZE, BUFFERS)** of the claim statement (``queue._PG_CLAIM``) at
   the seeded size, in a transaction that is rolled back: it should walk the
   partial index ``comparison_open_queue`` with no Sort node. Run with
   ``--overlap 2`` for the overlap-2 plan (a separate seeded project).
3. **Query profile**: one next + one submit through Django's test client, with
   every SQL statement the ORM sends listed (round trips per label).
4. **Load**: gunicorn (``--workers`` × ``--threads``, DEBUG off) on 127.0.0.1;
   for each level C (default ``1,8,32,32:140`` — ``C:think_ms``) C distinct
   annotators, each with its own token and keep-alive connection, loop
   ``GET /api/v1/projects/{id}/next/`` → ``POST /api/v1/comparisons/{cid}/judgments/``
   (``{"winner": <first candidate>}``, fresh ``Idempotency-Key``) then sleep the
   think time. Closed loop: a client issues its next request when the previous
   one answers. A level runs ``--warmup`` + ``--seconds``; only the second part
   is measured.
5. **Per level**: labels/s; p50/p95/p99 of next and submit latency; errors
   (non-2xx other than 204 and 409, plus transport errors); 409s; duplicates
   (client side: a comparison served twice to one annotator or to more
   annotators than it wants; database side: judgments per comparison above
   ``wanted``, counters that disagree with the rows); CPU ms per label of the app
   server (gunicorn master + workers), of Postgres (every process whose
   ``/proc/<pid>/comm`` is ``postgres`` — machine-wide, so other databases'
   work counts too) and of the load generator; database transactions per label
   (``pg_stat_database.xact_commit``, approximate); gunicorn peak RSS.

Run ``python bench/queue_bench.py --help``; bench/README.md has results.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import multiprocessing
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/tandem_bench"
ANNOTATION_TABLES = (
    "annotation_prompt",
    "annotation_candidate",
    "annotation_comparison",
    "annotation_assignment",
    "annotation_judgment",
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- Arguments -----------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    p.add_argument("--comparisons", type=int, default=1_000_000, help="comparisons to seed (default 1,000,000)")
    p.add_argument("--candidates", type=int, default=2, help="candidates per prompt (pairs per prompt: K(K-1)/2)")
    p.add_argument("--overlap", type=int, default=1, help="judgments wanted per comparison")
    p.add_argument("--reseed", action="store_true", help="seed a fresh project even if one matches")
    p.add_argument(
        "--levels", default="1,8,32,32:140", help="concurrency levels, C or C:think_ms (default %(default)s)"
    )
    p.add_argument("--think-ms", type=float, default=0.0, help="think time for levels that give none")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per level")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each level")
    p.add_argument("--max-labels", type=int, default=100_000, help="per-client cap on labels per level")
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (4 x 4 measured best here)")
    p.add_argument("--client-procs", type=int, default=2, help="load generator processes (threads inside)")
    p.add_argument("--no-explain", action="store_true")
    p.add_argument("--no-profile", action="store_true", help="skip the per-request SQL listing")
    p.add_argument("--json", dest="json_path", help="write the figures to this file")
    p.add_argument("--import-only", action="store_true", help="seed (with --reseed: import) and stop: no queue levels")
    args = p.parse_args(argv)
    args.level_specs = []
    for part in args.levels.split(","):
        c, _, think = part.strip().partition(":")
        args.level_specs.append((int(c), float(think) if think else args.think_ms))
    return args


# --- Database and Django ----------------------------------------------------------------------


def database_ensure(url: str) -> None:
    """Create the bench database if it does not exist (createdb on the same server)."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    from urllib.parse import urlparse

    u = urlparse(url)
    cmd = ["createdb", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]
    print(f"creating database: {' '.join(cmd)} {u.path.lstrip('/')}")
    subprocess.run([*cmd, u.path.lstrip("/")], check=True)


def bench_env(args) -> dict[str, str]:
    """Environment for both this process's Django and the gunicorn server."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        DEBUG="0",
        SECRET_KEY=env.get("SECRET_KEY") or "queue-bench-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        TANDEM_VAR_DIR=str(ROOT / "var" / "bench"),
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    # Production caches token lookups in Redis (CACHE_URL); this bench has no Redis, and changes no password,
    # so each process's own cache stands in for it.
    env.setdefault("TOKEN_CACHE_SECONDS", "60")
    return env


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def sql(query: str, params=None, *, fetch: str = "all"):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(query, params)
        if fetch == "none" or cur.description is None:
            return None
        return cur.fetchone() if fetch == "one" else cur.fetchall()


def vacuum_analyze(tables=ANNOTATION_TABLES) -> float:
    t0 = time.perf_counter()
    for table in tables:
        sql(f"VACUUM (ANALYZE) {table}", fetch="none")  # autocommit: VACUUM needs it
    return time.perf_counter() - t0


# --- Seeding ------------------------------------------------------------------------------


def bundle_write(path: Path, n_prompts: int, k: int) -> None:
    """One JSON line per prompt: K candidates and all their pairs."""
    filler = "The quick brown fox jumps over the lazy dog while the model explains its reasoning. "
    with path.open("w") as f:
        for i in range(n_prompts):
            cands = [
                {"id": f"p{i}-{j}", "text": f"Answer {j} to prompt {i}. " + filler * (1 + (i + j) % 3)}
                for j in range(k)
            ]
            row = {
                "id": f"p{i}",
                "text": f"Prompt {i}: explain topic {i % 997} in plain words.",
                "candidates": cands,
                "comparisons": "pairs",
            }
            f.write(json.dumps(row, separators=(",", ":")))
            f.write("\n")


def project_seed(args, owner) -> tuple[object, dict]:
    """Reuse or create the bench project; returns (project, seed figures)."""
    from annotation import importers
    from annotation.models import Comparison, Project
    from annotation.projects import project_create

    pairs = args.candidates * (args.candidates - 1) // 2
    n_prompts = math.ceil(args.comparisons / pairs)
    n_comparisons = n_prompts * pairs
    name = f"queue-bench n={n_comparisons} k={args.candidates} overlap={args.overlap}"
    if not args.reseed:
        for project in Project.objects.filter(name=name).order_by("-id"):
            if Comparison.objects.filter(project=project).count() == n_comparisons:
                print(f"reusing project {project.pk} ({name})")
                return project, {"reused": True, "comparisons": n_comparisons}
    project = project_create(created_by=owner, name=name, overlap=args.overlap)
    with tempfile.TemporaryDirectory(prefix="queue-bench-") as tmp:
        path = Path(tmp) / "bundle.jsonl"
        t0 = time.perf_counter()
        bundle_write(path, n_prompts, args.candidates)
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        print(
            f"generated {path.name}: {n_prompts} prompts × {args.candidates} candidates, "
            f"{size_mb:.0f} MB in {gen_s:.1f} s"
        )
        last = [0.0]

        def progress(phase, done, total):
            now = time.perf_counter()
            if now - last[0] > 10:
                last[0] = now
                print(f"  import {phase}: {done}/{total} rows, {now - t0:.0f} s", flush=True)

        # CPU as well as wall time: on a shared machine the wall time says as much
        # about the neighbours as about the import.
        backend = sql("SELECT pg_backend_pid()", fetch="one")[0]
        pg0, py0, load0 = proc_cpu_ms([backend]), time.process_time(), os.getloadavg()[0]
        t0 = time.perf_counter()
        result = importers.import_file(project=project, kind="bundle", path=str(path), progress=progress)
        import_s = time.perf_counter() - t0
        import_cpu = {
            "python_cpu_s": round(time.process_time() - py0, 1),
            "postgres_backend_cpu_s": round((proc_cpu_ms([backend]) - pg0) / 1000, 1),
            "load_average_1min_before_after": [round(load0, 1), round(os.getloadavg()[0], 1)],
        }
    got = Comparison.objects.filter(project=project).count()
    analyzed_by_importer = sql(
        "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL FROM pg_stat_user_tables"
        " WHERE relname = 'annotation_comparison'",
        fetch="one",
    )[0]
    vac_s = vacuum_analyze()
    figures = {
        "reused": False,
        "prompts": n_prompts,
        "candidates": n_prompts * args.candidates,
        "comparisons": got,
        "file_mb": round(size_mb, 1),
        "import_s": round(import_s, 1),
        "comparisons_per_s": round(got / import_s),
        "rows_per_s": round((n_prompts * (1 + args.candidates) + got) / import_s),
        **import_cpu,
        "importer_result": {k: v for k, v in (result or {}).items() if isinstance(v, (int, float, str, bool))},
        "analyze_seen_after_import": bool(analyzed_by_importer),
        "vacuum_analyze_s": round(vac_s, 1),
    }
    print(
        f"imported {got} comparisons in {import_s:.1f} s = {figures['comparisons_per_s']} comparisons/s "
        f"(prompts+candidates+comparisons ≈ {figures['rows_per_s']} rows/s); VACUUM ANALYZE {vac_s:.1f} s\n"
        f"  CPU: Python {import_cpu['python_cpu_s']} s, Postgres backend {import_cpu['postgres_backend_cpu_s']} s; "
        f"load average {import_cpu['load_average_1min_before_after']} (before, after)"
    )
    if got != n_comparisons:
        raise SystemExit(f"import produced {got} comparisons, expected {n_comparisons}")
    return project, figures


def queue_reset(project) -> None:
    """Forget every judgment, lease and counter of the project (a previous run's)."""
    pid = project.pk
    sql(
        "DELETE FROM annotation_spanmark"
        " WHERE judgment_id IN (SELECT id FROM annotation_judgment WHERE project_id = %s)",
        [pid],
        fetch="none",
    )
    sql("DELETE FROM annotation_judgment WHERE project_id = %s", [pid], fetch="none")
    sql("DELETE FROM annotation_assignment WHERE project_id = %s", [pid], fetch="none")
    sql(
        "UPDATE annotation_comparison SET judged = 0, leased = 0, status = 'open'"
        " WHERE project_id = %s AND (judged <> 0 OR leased <> 0 OR status <> 'open')",
        [pid],
        fetch="none",
    )
    vacuum_analyze(("annotation_comparison", "annotation_assignment", "annotation_judgment"))


def annotators_ensure(project, count: int, prefix: str = "bench-annotator") -> list[tuple[int, str]]:
    """``count`` annotator users, members of the project, each with an API token."""
    from django.contrib.auth import get_user_model

    from annotation.authentication import token_for
    from annotation.models import Role
    from annotation.projects import membership_set

    User = get_user_model()
    out = []
    for i in range(count):
        user, _ = User.objects.get_or_create(username=f"{prefix}-{i:03d}")
        membership_set(project=project, user=user, role=Role.ANNOTATOR)
        out.append((user.pk, token_for(user=user)))
    return out


# --- Diagnostics -----------------------------------------------------------------------------


def claim_explain(project, user_id: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the real claim statement, rolled back."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation import queue

    params = {
        "project": project.pk,
        "user": user_id,
        "ahead": 0,  # a plain `next`, as the bench's clients call it
        "gold": False,
        "now": timezone.now(),
        "gate": True,  # the API's call: the membership check inside the statement
        "turn": True,
        "dice": 1.0,  # never a gold check's turn
    }
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + queue._PG_CLAIM, params)
        plan = "\n".join(r[0] for r in cur.fetchall())
        transaction.set_rollback(True)
    return plan


def claim_plan_pick(plan: str) -> str:
    """The lines of the claim's plan under its ``CTE pick`` (the walk of the queue)."""
    lines = plan.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "CTE pick"), None)
    if start is None:
        return ""
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(
        (i for i in range(start + 1, len(lines)) if len(lines[i]) - len(lines[i].lstrip()) <= indent),
        len(lines),
    )
    return "\n".join(lines[start:end])


def request_profile(project, token: str) -> dict:
    """One next + one submit through Django's test client; the SQL each sends."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    out = {}
    with CaptureQueriesContext(connection) as q:
        r = client.get(f"/api/v1/projects/{project.pk}/next/")
    out["next"] = {"status": r.status_code, "queries": [x["sql"][:160] for x in q.captured_queries]}
    if r.status_code == 200:
        task = r.json()
        with CaptureQueriesContext(connection) as q:
            r = client.post(
                f"/api/v1/comparisons/{task['comparison']}/judgments/",
                {"winner": task["candidates"][0]["id"]},
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
            )
        out["submit"] = {"status": r.status_code, "queries": [x["sql"][:160] for x in q.captured_queries]}
    return out


def db_verify(project) -> dict:
    """Duplicates and counter drift, from the rows themselves."""
    pid = project.pk
    over = sql(
        "SELECT count(*) FROM (SELECT c.id FROM annotation_comparison c JOIN annotation_judgment j"
        " ON j.comparison_id = c.id WHERE c.project_id = %s GROUP BY c.id, c.wanted HAVING count(*) > c.wanted) x",
        [pid],
        fetch="one",
    )[0]
    dup_pairs = sql(
        "SELECT count(*) FROM (SELECT 1 FROM annotation_judgment WHERE project_id = %s"
        " GROUP BY comparison_id, annotator_id HAVING count(*) > 1) x",
        [pid],
        fetch="one",
    )[0]
    judged_drift = sql(
        "SELECT count(*) FROM annotation_comparison c LEFT JOIN (SELECT comparison_id, count(*) n"
        " FROM annotation_judgment WHERE project_id = %s GROUP BY comparison_id) j ON j.comparison_id = c.id"
        " WHERE c.project_id = %s AND (c.judged <> 0 OR j.n IS NOT NULL) AND c.judged <> coalesce(j.n, 0)",
        [pid, pid],
        fetch="one",
    )[0]
    leased_sum = sql(
        "SELECT coalesce(sum(leased), 0) FROM annotation_comparison WHERE project_id = %s AND leased <> 0",
        [pid],
        fetch="one",
    )[0]
    live_rows = sql(
        "SELECT count(*) FROM annotation_assignment WHERE project_id = %s AND state = 'leased'", [pid], fetch="one"
    )[0]
    judgments = sql("SELECT count(*) FROM annotation_judgment WHERE project_id = %s", [pid], fetch="one")[0]
    return {
        "judgments": judgments,
        "over_judged_comparisons": over,
        "duplicate_comparison_annotator": dup_pairs,
        "judged_counter_drift": judged_drift,
        "leased_counter_minus_live_leases": int(leased_sum) - live_rows,
    }


def xact_count(dbname: str) -> int:
    return sql("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", [dbname], fetch="one")[0]


# --- /proc accounting ------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def proc_cpu_ms(pids) -> float:
    return sum(proc_cpu_each(pids).values())


def proc_cpu_each(pids) -> dict[int, float]:
    """utime + stime (fields 14, 15 of /proc/<pid>/stat) in ms, per live pid."""
    out = {}
    for pid in pids:
        f = _stat(pid)
        if f:
            out[pid] = (int(f[11]) + int(f[12])) * 1000.0 / CLK_TCK
    return out


def cpu_delta_ms(before: dict[int, float], after: dict[int, float], pids=None) -> float:
    """CPU spent between two snapshots by the processes alive at both (optionally only ``pids``)."""
    keep = before.keys() & after.keys() if pids is None else before.keys() & after.keys() & set(pids)
    return sum(after[p] - before[p] for p in keep)


def pg_bench_pids(dbname: str) -> list[int]:
    """Postgres processes that work for the bench: its database's backends plus the
    server's own background processes (WAL writer, checkpointer, ...)."""
    rows = sql("SELECT pid FROM pg_stat_activity WHERE datname = %s OR backend_type <> 'client backend'", [dbname])
    return [r[0] for r in rows]


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children_of(ppid: int) -> list[int]:
    return [pid for pid in all_pids() if (f := _stat(pid)) and int(f[1]) == ppid]


def postgres_pids() -> list[int]:
    out = []
    for pid in all_pids():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                out.append(pid)
    return out


def machine_busy_ms() -> float:
    """CPU time the whole machine spent busy (all cores), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(f[:8]) - f[3] - f[4]  # user nice system idle iowait irq softirq steal: minus idle and iowait
    return busy * 1000.0 / CLK_TCK


def rss_mb(pids, field_name: str = "VmRSS") -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total += int(line.split()[1])
    return total / 1024


def machine_info() -> dict:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")
    )
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gb": round(mem_kb / 1024 / 1024, 1)}


# --- The server ----------------------------------------------------------------------------------


class Server:
    """gunicorn on a free 127.0.0.1 port; stopped (whole process group) on exit."""

    def __init__(self, env: dict[str, str], workers: int, threads: int):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers),
            "--threads", str(threads),
            "--worker-class", "gthread",
            "--keep-alive", "30",
            "--log-level", "warning",
        ]  # fmt: skip
        self.log = tempfile.NamedTemporaryFile(prefix="queue-bench-gunicorn-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}); see {self.log.name}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /healthz within 60 s")

    def pids(self) -> list[int]:
        return [self.proc.pid, *children_of(self.proc.pid)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# --- Load generator ----------------------------------------------------------------------------


@dataclass
class ClientResult:
    labels: int = 0  # 201s completed inside the measured window
    labels_total: int = 0
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    errors: int = 0
    conflicts: int = 0  # 409 on submit
    empty: int = 0  # 204 on next
    resumed: int = 0
    error_samples: list[str] = field(default_factory=list)
    served: list[int] = field(default_factory=list)  # comparison ids, non-resumed


def client_loop(port, project_id, token, window, deadline, think_s, max_labels) -> ClientResult:
    """One annotator: next → submit → think, on one keep-alive connection."""
    res = ClientResult()
    w0, w1 = window
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(method, path, body=None, extra=None):
        nonlocal conn
        h = dict(headers, **(extra or {}))
        if body is not None:
            h["Content-Type"] = "application/json"
        for attempt in (1, 2):  # one reconnect if the kept-alive socket was closed
            try:
                conn.request(method, path, body=body, headers=h)
                r = conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                return r.status, data
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if attempt == 2:  # a retried POST is safe: the submit is idempotent on its key
                    return None, repr(exc).encode()
        return None, b""

    def error(kind, status, data):
        res.errors += 1
        if len(res.error_samples) < 5:
            res.error_samples.append(f"{kind} {status}: {data[:200]!r}")

    while time.time() < deadline and res.labels_total < max_labels:
        t0 = time.time()
        status, data = call("GET", f"/api/v1/projects/{project_id}/next/")
        t1 = time.time()
        if t0 >= w0:
            res.next_ms.append((t1 - t0) * 1000)
        if status == 204:
            res.empty += 1
            break
        if status != 200:
            error("next", status, data)
            time.sleep(0.05)
            continue
        task = json.loads(data)
        if task.get("resumed"):
            res.resumed += 1
        else:
            res.served.append(task["comparison"])
        body = json.dumps({"winner": task["candidates"][0]["id"]})
        key = {"Idempotency-Key": str(uuid.uuid4())}
        t2 = time.time()
        status, data = call("POST", f"/api/v1/comparisons/{task['comparison']}/judgments/", body, key)
        t3 = time.time()
        if t2 >= w0:
            res.submit_ms.append((t3 - t2) * 1000)
        if status == 201:
            res.labels_total += 1
            if w0 <= t3 <= w1:
                res.labels += 1
        elif status == 409:
            res.conflicts += 1
        else:
            error("submit", status, data)
        if think_s:
            time.sleep(think_s)
    conn.close()
    return res


def client_process(port, project_id, tokens, window, deadline, think_s, max_labels, out_queue) -> None:
    """A load-generator process: one thread per annotator, results as dicts on the queue."""
    results = [None] * len(tokens)

    def run(i, token):
        results[i] = client_loop(port, project_id, token, window, deadline, think_s, max_labels)

    threads = [threading.Thread(target=run, args=(i, t), daemon=True) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline - time.time() + 60)
    out_queue.put([r.__dict__ for r in results if r is not None])


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))], 1)


def level_run(args, server: Server, project, annotators, c: int, think_ms: float, dbname: str) -> dict:
    """Run C clients for warmup + seconds; measure the second part."""
    from django.db import connections

    tokens = [tok for _, tok in annotators[:c]]
    nprocs = max(1, min(args.client_procs, c))
    start = time.time() + 0.5
    w0 = start + args.warmup
    w1 = w0 + args.seconds
    ctx = multiprocessing.get_context("fork")
    out_queue = ctx.Queue()
    connections.close_all()  # no inherited DB socket in the children
    procs = [
        ctx.Process(
            target=client_process,
            args=(
                server.port,
                project.pk,
                tokens[i::nprocs],
                (w0, w1),
                w1,
                think_ms / 1000,
                args.max_labels,
                out_queue,
            ),
            daemon=True,
        )
        for i in range(nprocs)
    ]
    xact0 = xact_count(dbname)
    judg0 = db_verify(project)["judgments"]
    loadgen0 = os.times()
    for p in procs:
        p.start()
    time.sleep(max(0, w0 - time.time()))
    gpids, ppids = server.pids(), postgres_pids()
    bench_pg = pg_bench_pids(dbname)
    app0, pg0, t_cpu0, busy0 = proc_cpu_each(gpids), proc_cpu_each(ppids), time.time(), machine_busy_ms()
    time.sleep(max(0, w1 - time.time()))
    app1, pg1, t_cpu1, busy1 = proc_cpu_each(gpids), proc_cpu_each(ppids), time.time(), machine_busy_ms()
    per_proc = [round(app1.get(p, 0) - app0.get(p, 0)) for p in gpids]
    app_ms, pg_all_ms, pg_ms = cpu_delta_ms(app0, app1), cpu_delta_ms(pg0, pg1), cpu_delta_ms(pg0, pg1, bench_pg)
    results = []
    for _ in procs:
        results.extend(out_queue.get(timeout=args.warmup + args.seconds + 120))
    for p in procs:
        p.join(30)
    loadgen1 = os.times()
    time.sleep(1.5)  # let backends flush their transaction counters
    verify = db_verify(project)
    xact1 = xact_count(dbname)

    labels = sum(r["labels"] for r in results)
    labels_total = verify["judgments"] - judg0
    served: dict[int, list[int]] = {}
    same_twice = 0
    for i, r in enumerate(results):
        seen = set()
        for cid in r["served"]:
            if cid in seen:
                same_twice += 1
            seen.add(cid)
            served.setdefault(cid, []).append(i)
    over_served = sum(1 for who in served.values() if len(set(who)) > args.overlap)
    window_s = t_cpu1 - t_cpu0
    nexts = [x for r in results for x in r["next_ms"]]
    submits = [x for r in results for x in r["submit_ms"]]
    loadgen_ms = (
        loadgen1.children_user + loadgen1.children_system - loadgen0.children_user - loadgen0.children_system
    ) * 1000
    per_label = max(labels, 1)
    return {
        "clients": c,
        "think_ms": think_ms,
        "seconds": round(window_s, 2),
        "labels": labels,
        "labels_per_s": round(labels / window_s, 1),
        "next_p50_ms": pct(nexts, 50),
        "next_p95_ms": pct(nexts, 95),
        "next_p99_ms": pct(nexts, 99),
        "submit_p50_ms": pct(submits, 50),
        "submit_p95_ms": pct(submits, 95),
        "submit_p99_ms": pct(submits, 99),
        "errors": sum(r["errors"] for r in results),
        "conflicts_409": sum(r["conflicts"] for r in results),
        "empty_204": sum(r["empty"] for r in results),
        "resumed": sum(r["resumed"] for r in results),
        "served_twice_same_annotator": same_twice,
        "served_to_more_than_overlap": over_served,
        "db": verify,
        "app_cpu_ms_per_label": round(app_ms / per_label, 2),
        "pg_cpu_ms_per_label": round(pg_ms / per_label, 2),  # bench DB backends + background processes
        "pg_all_cpu_ms_per_label": round(pg_all_ms / per_label, 2),  # every postgres process, other DBs too
        "loadgen_cpu_ms_per_label": round(loadgen_ms / max(labels_total, 1), 2),
        "app_cpu_ms_per_process": per_proc,  # master first, then workers
        "app_cpu_util": round(app_ms / 1000 / window_s, 2),
        "pg_cpu_util": round(pg_ms / 1000 / window_s, 2),
        "pg_all_cpu_util": round(pg_all_ms / 1000 / window_s, 2),
        # Whole machine, load generator and anything else running included.
        "machine_busy_cores": round((busy1 - busy0) / 1000 / window_s, 2),
        "db_xacts_per_label": round((xact1 - xact0) / max(labels_total, 1), 1),
        "gunicorn_rss_mb": round(rss_mb(server.pids())),
        "gunicorn_peak_rss_mb": round(rss_mb(server.pids(), "VmHWM")),
        "error_samples": [s for r in results for s in r["error_samples"]][:5],
    }


# --- Output ------------------------------------------------------------------------------------


def table_print(levels: list[dict]) -> None:
    cols = [
        ("C", "clients"), ("think", "think_ms"), ("labels/s", "labels_per_s"),
        ("next p50", "next_p50_ms"), ("p95", "next_p95_ms"), ("p99", "next_p99_ms"),
        ("submit p50", "submit_p50_ms"), ("p95", "submit_p95_ms"), ("p99", "submit_p99_ms"),
        ("err", "errors"), ("409", "conflicts_409"), ("dup", "dup"),
        ("app ms/l", "app_cpu_ms_per_label"), ("pg ms/l", "pg_cpu_ms_per_label"), ("pg all", "pg_all_cpu_ms_per_label"),
        ("gen ms/l", "loadgen_cpu_ms_per_label"), ("busy", "machine_busy_cores"), ("xact/l", "db_xacts_per_label"),
    ]  # fmt: skip
    rows = []
    for lv in levels:
        lv = dict(lv)
        d = lv["db"]
        lv["dup"] = (
            lv["served_twice_same_annotator"] + lv["served_to_more_than_overlap"]
            + d["over_judged_comparisons"] + d["duplicate_comparison_annotator"]
        )  # fmt: skip
        rows.append(["-" if lv[k] is None else str(lv[k]) for _, k in cols])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (h, _) in enumerate(cols)]
    print("  ".join(h.rjust(w) for (h, _), w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    print("latencies in ms; dup = served twice to one annotator + served to more than overlap + DB over-judged + DB")
    print("duplicate (comparison, annotator); CPU in ms per label (app = gunicorn, pg = the bench database's backends")
    print("+ Postgres background processes, pg all = every postgres process on the machine, gen = load generator);")
    print("busy = cores busy machine-wide (2 = all of a 2-core box; other jobs included);")
    print("xact/l = Postgres transactions per label (pg_stat_database, approximate)")


# --- Main ----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (ROOT / "annotation" / "importers" / "__init__.py").exists():
        raise SystemExit("annotation/importers/ does not exist yet; the bench seeds through it")
    database_ensure(args.database_url)
    env = bench_env(args)
    django_setup(env)

    from django.conf import settings
    from django.contrib.auth import get_user_model

    dbname = settings.DATABASES["default"]["NAME"]
    report: dict = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "args": dict(vars(args))}
    report["args"].pop("level_specs", None)
    print(f"machine: {report['machine']}; database {dbname}")

    owner, _ = get_user_model().objects.get_or_create(username="bench-owner")
    project, report["seed"] = project_seed(args, owner)
    if args.import_only:
        if args.json_path:
            Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json_path).write_text(json.dumps(report, indent=2, default=str))
        return 0
    queue_reset(project)
    max_c = max(c for c, _ in args.level_specs)
    annotators = annotators_ensure(project, max_c)

    if not args.no_explain:
        plan = claim_explain(project, annotators[0][0])
        report["claim_explain"] = plan
        print(
            f"\nEXPLAIN (ANALYZE, BUFFERS) of queue._PG_CLAIM, overlap {args.overlap}, "
            f"{report['seed']['comparisons']} comparisons:"
        )
        print(plan)
        pick = claim_plan_pick(plan)
        uses_index = "comparison_open_queue" in pick
        # Only the walk matters: the task's content is sorted too (its K candidates, in list order).
        sorts = any(line.strip().startswith(("Sort", "->  Sort", "Incremental Sort")) for line in pick.splitlines())
        print(f"the pick walks comparison_open_queue: {uses_index}; the pick has a Sort node: {sorts}\n")
    if not args.no_profile:
        ((_, profiler_token),) = annotators_ensure(project, 1, prefix="bench-profiler")
        prof = request_profile(project, profiler_token)
        report["request_profile"] = prof
        for name, p in prof.items():
            print(f"{name} → HTTP {p['status']}, {len(p['queries'])} SQL statements through the ORM:")
            for q in p["queries"]:
                print(f"    {q}")
        print()

    server = None
    levels = []
    try:
        server = Server(env, args.workers, args.threads)
        print(f"gunicorn {args.workers}×{args.threads} on 127.0.0.1:{server.port} (log {server.log.name})")
        for c, think in args.level_specs:
            lv = level_run(args, server, project, annotators, c, think, dbname)
            levels.append(lv)
            print(
                f"C={c:>3} think={think:g}ms: {lv['labels_per_s']} labels/s, next p50/p95/p99 "
                f"{lv['next_p50_ms']}/{lv['next_p95_ms']}/{lv['next_p99_ms']} ms, submit "
                f"{lv['submit_p50_ms']}/{lv['submit_p95_ms']}/{lv['submit_p99_ms']} ms, errors {lv['errors']}, "
                f"409 {lv['conflicts_409']}, "
                f"app {lv['app_cpu_ms_per_label']} / pg {lv['pg_cpu_ms_per_label']} ms CPU/label"
                + (f"\n    error samples: {lv['error_samples']}" if lv["error_samples"] else ""),
                flush=True,
            )
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        if server is not None:
            server.stop()
    report["levels"] = levels
    print()
    if "comparisons_per_s" in report["seed"]:
        s = report["seed"]
        print(f"import: {s['comparisons']} comparisons in {s['import_s']} s = {s['comparisons_per_s']} comparisons/s")
    print(
        f"machine: {report['machine']['nproc']} cores ({report['machine']['cpu']}), "
        f"{report['machine']['ram_gb']} GB RAM; "
        f"gunicorn {args.workers}×{args.threads}; overlap {args.overlap}; {report['seed']['comparisons']} comparisons"
    )
    if levels:
        table_print(levels)
        print(
            f"gunicorn RSS {levels[-1]['gunicorn_rss_mb']} MB "
            f"(sum of per-process peaks {levels[-1]['gunicorn_peak_rss_mb']} MB)"
        )
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(report, indent=2, default=str))
        print(f"figures written to {args.json_path}")
    return 0


def _sigterm(signum, frame):
    raise KeyboardInterrupt  # the finally in main() stops gunicorn


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    sys.exit(main())
