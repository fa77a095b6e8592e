"""API import benchmark: bundle batches of 1,000 and 10,000 tasks into a project that already holds many (issue 21).

Prints figures; it is not a test.

Workload
--------
1. **Seed** (or reuse) a Postgres project of ``--seed`` tasks (default 200,000) through ``import_file``: one
   bundle line per task, a prompt and two candidates of 30–60 and 80–200 words (~2 KB, the shape the outside
   harness of ``../shared/peers/`` sends) and ``"comparisons": "pairs"``. Then ``VACUUM (ANALYZE)``, so every run
   starts from fresh statistics.
2. **Batches through the API, in this process**: ``POST /api/v1/projects/{id}/imports/`` with Django's test client
   and the project owner's token, the full middleware chain included. A batch under ``IMPORT_INLINE_MAX_BYTES`` is
   imported in the request (201); a larger one becomes a job, which runs here as the worker would run it
   (``CELERY_TASK_ALWAYS_EAGER``), so its time counts. For each ``--sizes`` entry (``size:count``, default
   ``1000:44,10000:6``), that many batches of new tasks.
3. **Per size**: tasks/s (tasks ÷ the sum of the POSTs' wall times, the batch files built outside the timing), the
   batch time's median and maximum, this process's CPU and its Postgres backend's CPU per batch (the importer's
   short-lived side connections are not counted), and how many times each table was ANALYZEd
   (``pg_stat_user_tables.analyze_count``).

After each size the batches' rows and jobs are deleted again (``--keep`` keeps them) and the tables VACUUM
ANALYZEd, so every size and every run starts from the same seed. An import runs no ANALYZE of its own (the beat
does, ``annotation.planner_statistics``): the counts should read 0.

``--profile`` adds a cProfile of one more 1,000-task batch (top functions by cumulative time) and the statements
the importing connection sent.

Run ``python bench/import_bench.py --help``; bench/README.md has results.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from queue_bench import (
    DEFAULT_DB,
    bench_env,
    database_ensure,
    django_setup,
    proc_cpu_ms,
    sql,
    vacuum_analyze,
)

TABLES = ("annotation_prompt", "annotation_candidate", "annotation_comparison")
_WORDS = (
    "the of and to in is that for it as was with be by on not this are or from at which but have an they you "
    "were there would their we been has when who will more if out so what up about into than them can only other "
    "new some could time these two may then first any now such like over even most made after also many before "
    "must through back years where much way well down should because each just those people how little state good "
    "very make world still own see work long here between both life being under never day same another know while "
    "model answer response prompt reasoning step data training feedback human preference reward policy safety "
    "helpful honest harmless example explain code function value result error python list string number output"
).split()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    p.add_argument("--seed", type=int, default=200_000, help="tasks in the project before the batches")
    p.add_argument("--reseed", action="store_true", help="seed a fresh project even if one matches")
    p.add_argument("--sizes", default="1000:44,10000:6", help="batch size:count, comma-separated")
    p.add_argument("--profile", action="store_true", help="cProfile and statements of one more 1,000-task batch")
    p.add_argument("--keep", action="store_true", help="keep the batches' rows (by default deleted after the run)")
    p.add_argument("--json", dest="json_path", help="append the figures to this file (JSON lines)")
    args = p.parse_args(argv)
    args.size_specs = [tuple(int(x) for x in part.split(":")) for part in args.sizes.split(",")]
    return args


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."


def bundle_lines(rng: random.Random, first: int, count: int) -> bytes:
    """``count`` bundle rows numbered from ``first``: the ids are new to the project, so every row is created."""
    out = io.StringIO()
    for i in range(first, first + count):
        row = {
            "id": f"t{i}",
            "text": f"[{i}] {_text(rng, 30, 60)} ?",
            "candidates": [{"id": f"t{i}-{side}", "text": _text(rng, 80, 200)} for side in "ab"],
            "comparisons": "pairs",
        }
        out.write(json.dumps(row, separators=(",", ":")))
        out.write("\n")
    return out.getvalue().encode()


def project_seed(args, owner):
    from annotation import importers
    from annotation.models import Comparison, Project
    from annotation.projects import project_create

    name = f"import-bench seed={args.seed}"
    if not args.reseed:
        for project in Project.objects.filter(name=name).order_by("-id"):
            held = Comparison.objects.filter(project=project).count()
            if held >= args.seed:
                print(f"reusing project {project.pk} ({name}, {held} tasks)")
                return project
    project = project_create(created_by=owner, name=name, overlap=1)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        path = Path(tmp) / "seed.jsonl"
        with path.open("wb") as f:
            for first in range(0, args.seed, 10_000):
                f.write(bundle_lines(rng, first, min(10_000, args.seed - first)))
        t0 = time.perf_counter()
        importers.import_file(project=project, kind="bundle", path=str(path))
        print(f"seeded {args.seed} tasks ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    return project


def analyze_counts() -> dict[str, int]:
    rows = sql("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(%s)", [list(TABLES)])
    return dict(rows)


def batch_post(client, project_id: int, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("batch.jsonl", data, content_type="application/jsonl")
    return client.post(f"/api/v1/projects/{project_id}/imports/", {"kind": "bundle", "file": upload})


def run_size(client, project, size: int, count: int, next_id: list[int]) -> dict:
    from django.db import connection

    rng = random.Random(size)
    backend = sql("SELECT pg_backend_pid()", fetch="one")[0]
    times, routes, py_cpu, pg_cpu = [], set(), [], []
    before = analyze_counts()
    for _ in range(count):
        data = bundle_lines(rng, next_id[0], size)  # built outside the timing
        next_id[0] += size
        py0, pg0, t0 = time.process_time(), proc_cpu_ms([backend]), time.perf_counter()
        response = batch_post(client, project.pk, data)
        times.append(time.perf_counter() - t0)
        py_cpu.append(time.process_time() - py0)
        pg_cpu.append((proc_cpu_ms([backend]) - pg0) / 1000)
        if response.status_code not in (201, 202):
            raise SystemExit(f"batch of {size}: {response.status_code} {response.content[:500]!r}")
        job = response.json()
        routes.add(response.status_code)
        created = (job.get("result") or {}).get("comparisons", {}).get("created")
        if response.status_code == 202:  # ran eagerly: read the job's outcome
            from annotation.models import ImportJob

            finished = ImportJob.objects.get(pk=job["id"])
            if finished.status != "succeeded":
                raise SystemExit(f"batch of {size}: job {finished.pk} {finished.status}: {finished.error}")
            created = finished.result["comparisons"]["created"]
        if created != size:
            raise SystemExit(f"batch of {size}: {created} comparisons created")
        if connection.connection is not None:
            backend = sql("SELECT pg_backend_pid()", fetch="one")[0]  # CONN_MAX_AGE may have replaced it
    after = analyze_counts()
    total = sum(times)
    return {
        "batch": size,
        "batches": count,
        "batch_bytes": len(data),
        "routes": sorted(routes),
        "tasks_per_s": round(size * count / total),
        "batch_s_median": round(statistics.median(times), 3),
        "batch_s_max": round(max(times), 3),
        "batch_s_first": round(times[0], 3),
        "python_cpu_s_per_batch": round(statistics.mean(py_cpu), 3),
        "postgres_backend_cpu_s_per_batch": round(statistics.mean(pg_cpu), 3),
        "analyzes": {t.removeprefix("annotation_"): after.get(t, 0) - before.get(t, 0) for t in TABLES},
    }


def profile_one(client, project, next_id: list[int]) -> None:
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    data = bundle_lines(random.Random(7), next_id[0], 1000)
    next_id[0] += 1000
    profiler = cProfile.Profile()
    with CaptureQueriesContext(connection) as queries:
        profiler.enable()
        batch_post(client, project.pk, data)
        profiler.disable()
    print(f"\nstatements on the importing connection ({len(queries)}):")
    for q in queries:
        print(f"  {q['time']:>6}s  {q['sql'][:150]}")
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(45)
    print(stream.getvalue())


def batches_remove(project, last_ids: dict[str, int]) -> None:
    """Delete what the batches added (rows, jobs and their stored files), so the next run starts from the seed."""
    from annotation.models import ImportJob

    for job in ImportJob.objects.filter(project=project, pk__gt=last_ids["annotation_importjob"]):
        job.file.delete(save=False)
        job.delete()
    for table in reversed(TABLES):
        sql(f"DELETE FROM {table} WHERE project_id = %s AND id > %s", [project.pk, last_ids[table]], fetch="none")
    vacuum_analyze(TABLES)


def main(argv=None) -> None:
    args = parse_args(argv)
    database_ensure(args.database_url)
    env = bench_env(args)
    env["CELERY_TASK_ALWAYS_EAGER"] = "1"  # a job-sized batch runs here, as the worker would run it
    django_setup(env)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from annotation.authentication import token_for
    from annotation.models import Comparison

    owner, _ = get_user_model().objects.get_or_create(username="import-bench", defaults={"is_superuser": True})
    project = project_seed(args, owner)
    vacuum_analyze(TABLES)
    client = Client(headers={"authorization": f"Token {token_for(user=owner)}"})
    held = Comparison.objects.filter(project=project).count()
    last_ids = {table: sql(f"SELECT coalesce(max(id), 0) FROM {table}", fetch="one")[0] for table in TABLES}
    last_ids["annotation_importjob"] = sql("SELECT coalesce(max(id), 0) FROM annotation_importjob", fetch="one")[0]
    next_id = [10_000_000 + held]  # past every id the seed and earlier runs used
    results = []
    load0 = os.getloadavg()[0]
    for size, count in args.size_specs:
        figures = run_size(client, project, size, count, next_id)
        results.append(figures)
        print(
            f"batches of {size:>6} ×{count:<3} ({figures['batch_bytes'] / 1e6:.1f} MB, HTTP {figures['routes']}): "
            f"{figures['tasks_per_s']:>6} tasks/s; batch median {figures['batch_s_median']} s, "
            f"max {figures['batch_s_max']} s; CPU per batch: Python {figures['python_cpu_s_per_batch']} s, "
            f"Postgres backend {figures['postgres_backend_cpu_s_per_batch']} s; ANALYZE runs {figures['analyzes']}",
            flush=True,
        )
        if not args.keep:
            batches_remove(project, last_ids)  # each size starts from the seed and fresh statistics
    summary = {
        "workload": "api-import",
        "project_tasks_before": held,
        "load_average_1min_before_after": [round(load0, 1), round(os.getloadavg()[0], 1)],
        "results": results,
        "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    print(f"load average (1 min) before, after: {summary['load_average_1min_before_after']}")
    if args.profile:
        profile_one(client, project, next_id)
        if not args.keep:
            batches_remove(project, last_ids)
    if args.json_path:
        with open(args.json_path, "a") as f:
            f.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
