"""Export benchmark: rows/s and peak RSS of the exporting process, per format, at two project sizes.

Prints figures; it is not a test.

Workload
--------
1. **Seed** (or reuse) two Postgres projects — 100,000 and 1,000,000 judgments by default (``--sizes``) — with
   bulk SQL (``INSERT … SELECT generate_series``), not through the API: per project N/2 prompts, each with 2
   candidates and one pairwise comparison judged by 2 of 50 annotators (winner, strength, a rating, a rationale,
   the shown order, time spent; one judgment in ten marks a span). Then ``ANALYZE``.
2. **Export** each project once per format (``--formats``) and shape (``--shapes``, default ``judgments``, the
   widest rows, and ``pairs``) with ``--processes`` worker processes (default ``settings.EXPORT_PROCESSES``;
   1 = serial; several values, comma-separated, run one after the other), each in a fresh child process
   (``--child``) that sets Django up, then times ``annotation.exporters.export_to_folder`` alone into a
   temporary folder.
3. **Per run**: rows, seconds, rows/s (wall clock); CPU seconds of the exporting process, of its worker
   processes (``RUSAGE_CHILDREN`` once they are reaped) and of Postgres (every server process, from ``/proc``:
   the live ones plus what the postmaster has reaped — the whole cluster, so run it alone); rows per
   CPU-second of export + workers; peak RSS (MB, ``ru_maxrss``: the whole process, Django and pyarrow
   included) of the exporting process and of its largest worker; size of the output.

    .venv/bin/python bench/export_bench.py                      # seed if missing, run everything
    .venv/bin/python bench/export_bench.py --sizes 100000 --formats jsonl,parquet --shapes pairs
    .venv/bin/python bench/export_bench.py --sizes 1000000 --processes 1,2

``DATABASE_URL`` (or ``--database-url``) defaults to ``postgres://postgres@127.0.0.1:5432/tandem_ex_bench``.
Targets (issue 6): every format ≥ 50,000 rows/s and peak RSS ≤ 300 MB, the same at 100k and 1M judgments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/tandem_ex_bench"
ANNOTATORS = 50


def _django(database_url: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("TANDEM_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _ensure_database(database_url: str) -> None:
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _seed(judgments: int) -> int:
    """The project of ``judgments`` judgments (created once, then reused); its id."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation.models import Judgment, Project

    name = f"export-bench-{judgments}"
    project = Project.objects.filter(name=name).first()
    if project is not None and Judgment.objects.filter(project=project).count() == judgments:
        return project.pk
    if project is not None:
        project.delete()
    users = [get_user_model().objects.get_or_create(username=f"bench-annotator-{i}")[0] for i in range(ANNOTATORS)]
    user_ids = "ARRAY[" + ",".join(str(u.pk) for u in users) + "]::bigint[]"
    comparisons = judgments // 2
    started = time.perf_counter()
    with transaction.atomic():
        project = Project.objects.create(
            name=name,
            overlap=2,
            schema={"arity": 2, "allow_tie": True, "strength": {"min": 0, "max": 3}, "rationale": "optional"},
        )
        p = project.pk
        with connection.cursor() as cur:
            cur.execute(
                f"""
                INSERT INTO annotation_prompt (project_id, external_id, text, context, metadata, split, created_at)
                SELECT {p}, 'p' || g, 'Prompt ' || g || ': explain, in a few sentences, why the sky looks blue '
                       || 'at noon and red at sunset, for a curious ten-year-old.',
                       '[]'::jsonb, '{{"source": "bench", "license": "CC0-1.0"}}'::jsonb,
                       CASE WHEN g % 10 = 0 THEN 'eval' ELSE 'train' END, now()
                FROM generate_series(1, {comparisons}) g""",
            )
            cur.execute(
                f"""
                INSERT INTO annotation_candidate
                    (project_id, prompt_id, external_id, text, media, mime_type, source, origin, metadata, created_at)
                SELECT {p}, pr.id, pr.external_id || '-' || k,
                       CASE k WHEN 0 THEN 'Sunlight scatters off air molecules; blue light scatters most, so the '
                                          || 'sky looks blue. At sunset light crosses more air and blue is lost.'
                              ELSE 'The sky reflects the ocean, which is blue, and at sunset the sun is hot.' END,
                       '', 'text/plain', 'imported', '{{}}'::jsonb, '{{}}'::jsonb, now()
                FROM annotation_prompt pr CROSS JOIN (VALUES (0), (1)) AS v(k)
                WHERE pr.project_id = {p}""",
            )
            cur.execute(
                f"""
                INSERT INTO annotation_comparison (project_id, prompt_id, external_id, candidate_ids, status,
                    priority, wanted, judged, leased, is_gold, origin, created_at, serve_order)
                SELECT {p}, c.prompt_id, 'cmp-' || c.prompt_id, jsonb_build_array(min(c.id), max(c.id)), 'done',
                       0, 2, 2, 0, false, '{{}}'::jsonb, now(), c.prompt_id
                FROM annotation_candidate c WHERE c.project_id = {p} GROUP BY c.prompt_id""",
            )
            cur.execute(
                f"""
                INSERT INTO annotation_judgment (project_id, comparison_id, annotator_id, winner_id, tie, ranking,
                    strength, ratings, rationale, shown_order, time_spent_ms, idempotency_key, lease_lost, created_at)
                SELECT {p}, c.id, ({user_ids})[1 + (c.id + k) % {ANNOTATORS}],
                       (c.candidate_ids ->> ((c.id + k) % 3 = 0)::int)::bigint, false, NULL, 1 + (c.id + k) % 3,
                       jsonb_build_object(c.candidate_ids ->> 0, jsonb_build_object('helpful', 4)),
                       'The first answer explains scattering; the second is wrong.',
                       c.candidate_ids, 2000 + (c.id * 7 + k) % 5000, 'bench-' || c.id || '-' || k, false,
                       now() - make_interval(secs => c.id)
                FROM annotation_comparison c CROSS JOIN (VALUES (0), (1)) AS v(k)
                WHERE c.project_id = {p}""",
            )
            cur.execute(
                f"""
                INSERT INTO annotation_spanmark (judgment_id, candidate_id, start, "end", box, category, note)
                SELECT j.id, (c.candidate_ids ->> 1)::bigint, 4, 20, NULL, 'incorrect', ''
                FROM annotation_judgment j JOIN annotation_comparison c ON c.id = j.comparison_id
                WHERE j.project_id = {p} AND j.id % 10 = 0""",
            )
    with connection.cursor() as cur:
        for table in ("prompt", "candidate", "comparison", "judgment", "spanmark"):
            cur.execute(f"ANALYZE annotation_{table}")
    print(f"seeded {judgments:,} judgments in {time.perf_counter() - started:.0f} s (project {project.pk})")
    return project.pk


def _rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _stream_child(project, request) -> None:
    """The streamed download (``export_stream``, what ``GET …/exports/stream/`` sends), its chunks discarded as
    a client would take them; twice, since a web worker serves many: how far RSS rises above where it started."""
    from annotation.exporters import export_stream

    runs = []
    for _ in range(2):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before, started, sent, largest = _rss_mb("VmRSS"), time.perf_counter(), 0, 0
        for chunk in export_stream(project, request):
            sent += len(chunk)
            largest = max(largest, len(chunk))
        runs.append(
            {
                "seconds": time.perf_counter() - started,
                "bytes": sent,
                "largest_chunk_mb": largest / 2**20,
                "rss_before_mb": before,
                "rss_growth_mb": _rss_mb("VmHWM") - before,
                "rss_after_mb": _rss_mb("VmRSS"),
            }
        )
    print(json.dumps({"stream": runs}))


def _child(args) -> None:
    _django(args.database_url)
    from annotation.exporters import Export, export_request_parse
    from annotation.exporters.formats import FolderTarget
    from annotation.models import Project

    project = Project.objects.get(pk=args.project)
    request = export_request_parse(shape=args.shape, file_format=args.child)
    if args.stream:
        _stream_child(project, request)
        return
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        started, cpu_started = time.perf_counter(), time.process_time()
        export = Export(project, request, FolderTarget(Path(tmp)), processes=args.processes)
        for _ in export.run():
            pass
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the export's workers, reaped when it ended
    print(
        json.dumps(
            {
                "rows": export.stats.rows,
                "judgments": export.stats.judgments,
                "seconds": seconds,
                "export_cpu_s": cpu_seconds,
                "workers_cpu_s": workers.ru_utime + workers.ru_stime,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_peak_rss_mb": workers.ru_maxrss / 1024,
                "bytes": size,
            }
        )
    )


def _postgres_cpu_s(postmaster: int) -> float:
    """CPU seconds of the Postgres server so far: the postmaster, its live processes, and those it reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _run(args, project_id: int, file_format: str, shape: str, processes: int, postmaster: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        file_format,
        "--shape",
        shape,
        "--project",
        str(project_id),
        "--processes",
        str(processes),
        "--database-url",
        args.database_url,
        *(["--stream"] if args.stream else []),
    ]
    postgres_before = _postgres_cpu_s(postmaster)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    output = process.stdout.read()
    _, status, _ = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"export child failed ({status}): {output.decode()}")
    result = json.loads(output.decode().strip().splitlines()[-1])
    if args.stream:
        return result
    result["postgres_cpu_s"] = _postgres_cpu_s(postmaster) - postgres_before
    result["rows_per_s"] = result["rows"] / result["seconds"]
    result["rows_per_cpu_s"] = result["rows"] / (result["export_cpu_s"] + result["workers_cpu_s"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--sizes", default="100000,1000000", help="judgments per seeded project")
    parser.add_argument("--formats", default="jsonl,csv,parquet,hf")
    parser.add_argument("--shapes", default="judgments,pairs")
    parser.add_argument("--processes", help="worker processes per export, comma-separated (default: the setting)")
    parser.add_argument("--stream", action="store_true", help="the streamed download instead: seconds, RSS growth")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--shape", default="judgments", help=argparse.SUPPRESS)
    parser.add_argument("--project", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.processes = int(args.processes)
        _child(args)
        return
    _ensure_database(args.database_url)
    _django(args.database_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        postmaster = int(Path(f"/proc/{cursor.fetchone()[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
    processes = [int(n) for n in (args.processes or str(settings.EXPORT_PROCESSES)).split(",")]
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} (1 min)")
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        project_id = _seed(size)
        for shape in args.shapes.split(","):
            for file_format in args.formats.split(","):
                for n in processes:
                    load = os.getloadavg()[0]
                    r = _run(args, project_id, file_format, shape, n, postmaster)
                    r.update(size=size, shape=shape, format=file_format, processes=n, load=load)
                    results.append(r)
                    if args.stream:
                        for i, run in enumerate(r["stream"], 1):
                            print(
                                f"{size:>9,} judgments  {shape:<9} {file_format:<7} streamed, run {i}"
                                f"  {run['seconds']:6.2f} s  {run['bytes'] / 2**20:7.1f} MB sent"
                                f" (largest chunk {run['largest_chunk_mb']:.1f} MB)  RSS {run['rss_before_mb']:.0f} MB"
                                f" before, +{run['rss_growth_mb']:.0f} MB at peak, {run['rss_after_mb']:.0f} MB after"
                                f"  (load {load:.1f})",
                                flush=True,
                            )
                        continue
                    print(
                        f"{size:>9,} judgments  {shape:<9} {file_format:<7} {n} proc  {r['rows']:>9,} rows"
                        f"  {r['seconds']:6.1f} s  {r['rows_per_s']:>8,.0f} rows/s"
                        f"  CPU s: export {r['export_cpu_s']:5.1f} + workers {r['workers_cpu_s']:5.1f}"
                        f" + postgres {r['postgres_cpu_s']:5.1f}  {r['rows_per_cpu_s']:>7,.0f} rows/CPU-s"
                        f"  peak RSS {r['peak_rss_mb']:4.0f} MB, worker {r['worker_peak_rss_mb']:4.0f} MB"
                        f"  {r['bytes'] / 2**20:7.1f} MB out  (load {load:.1f})",
                        flush=True,
                    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
