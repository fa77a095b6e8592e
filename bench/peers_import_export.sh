#!/usr/bin/env bash
# Tandem beside the framework-free reference server of ../shared/peers on the load harness's other two workloads
# (issue 21): API imports in batches of 1,000 and 10,000 tasks, and the streamed export of LABELS judgments with
# the server's peak RSS. Same machine, same Postgres, one run, passes in ABBA order (reference, Tandem, Tandem,
# reference). The queue workload has its own command: ../shared/peers/queue_vs_ceiling.sh.
#
#   bench/peers_import_export.sh                     # 10,000 tasks per import pass, 10,000 judgments exported
#   TASKS=20000 LABELS=20000 bench/peers_import_export.sh
#
# Run it from the project root, alone (a few minutes at the defaults). It drops and re-creates the databases
# tandem_peers_io and limit_peers_io, starts Tandem (gunicorn with config/gunicorn.py and a Celery worker with the
# beat on a filesystem broker, for batches too big to import in the request) and the reference, and stops all of it
# at the end. JSON lines go to bench/results/peers_import_export.jsonl; the table prints at the end.
set -euo pipefail

ROOT="$PWD"
PEERS_DIR="${PEERS_DIR:-$ROOT/../shared/peers}"
TASKS="${TASKS:-10000}"            # tasks per import pass
BATCHES="${BATCHES-1000 10000}"    # tasks per import request (empty: no imports)
LABELS="${LABELS:-10000}"          # judgments in each exported project
ANNOTATORS="${ANNOTATORS:-8}"      # who label the export projects
KEEP_DBS="${KEEP_DBS:-0}"          # 1: keep both databases at the end (to profile the export on the same data)
TANDEM_DB=tandem_peers_io LIMIT_DB=limit_peers_io
TANDEM_PORT="${TANDEM_PORT:-8111}" LIMIT_PORT="${LIMIT_PORT:-8121}"
RESULTS="$ROOT/bench/results/peers_import_export.jsonl"
export PYTHONDONTWRITEBYTECODE=1
export PEERS="${PEERS:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem-peers}"
export VENV="$PEERS/limit-venv"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export WEB_WORKERS="${WEB_WORKERS:-4}" WEB_THREADS="${WEB_THREADS:-4}"

say() { echo "[$(date -u +%H:%M:%S)] $*"; }
die() { echo "peers_import_export: $*" >&2; exit 1; }
[ -f manage.py ] && [ -x .venv/bin/gunicorn ] || die "run from the project root after make install"
[ -f "$PEERS_DIR/harness/bench.py" ] || die "no load harness at $PEERS_DIR (set PEERS_DIR)"
[ $((LABELS % ANNOTATORS)) = 0 ] || die "LABELS must be a multiple of ANNOTATORS"

RUN_ID="pie-$(date -u +%Y%m%dT%H%M%SZ)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tandem-peers-io.XXXXXX")"
mkdir -p "$WORK/run" "$WORK/logs" "$WORK/var" "$(dirname "$RESULTS")"
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ -x "$VENV/bin/python" ] && [ "$KEEP_DBS" != 1 ]; then
    "$VENV/bin/python" "$PEERS_DIR/pgtool.py" drop "$TANDEM_DB" || true
    "$VENV/bin/python" "$PEERS_DIR/pgtool.py" drop "$LIMIT_DB" || true
  fi
  [ "$rc" = 0 ] && rm -rf "$WORK" || echo "logs kept in $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PEERS_DIR/limit/run.sh" install >"$WORK/logs/venv.log" 2>&1 || die "the harness venv failed: $WORK/logs/venv.log"
PY="$VENV/bin/python"
"$PY" "$PEERS_DIR/pgtool.py" recreate "$TANDEM_DB"
"$PY" "$PEERS_DIR/pgtool.py" recreate "$LIMIT_DB"

export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$TANDEM_DB" DJANGO_SETTINGS_MODULE=config.settings DEBUG=0
export ALLOWED_HOSTS=127.0.0.1,localhost TANDEM_VAR_DIR="$WORK/var" CELERY_BROKER_URL=filesystem://localhost/
export WEB_BIND="127.0.0.1:$TANDEM_PORT"
SECRET_KEY="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')" && export SECRET_KEY
.venv/bin/python manage.py migrate --noinput >"$WORK/logs/migrate.log" 2>&1 || die "migrate failed: $WORK/logs"
.venv/bin/gunicorn -c config/gunicorn.py config.wsgi >"$WORK/logs/tandem.log" 2>&1 &
T_PID=$!; PIDS+=("$T_PID")
# With the beat, as the embedded default runs it: it refreshes planner statistics once a minute (no autovacuum here).
.venv/bin/celery -A config worker -B -s "$WORK/celerybeat-schedule" -Q default --concurrency 2 --loglevel warning \
  >"$WORK/logs/celery.log" 2>&1 &
PIDS+=("$!")
L_PID=$(PORT="$LIMIT_PORT" PGDATABASE="$LIMIT_DB" RUN_DIR="$WORK/run" LOG_DIR="$WORK/logs" \
        "$PEERS_DIR/limit/run.sh" start 2>>"$WORK/logs/limit.log") || die "the reference did not start: $WORK/logs"
PIDS+=("$L_PID")
for url in "http://127.0.0.1:$TANDEM_PORT/healthz" "http://127.0.0.1:$LIMIT_PORT/health"; do
  for _ in $(seq 1 300); do
    "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null && break
    sleep 0.2
  done
done

harness() {  # system workload args...: one harness call, its JSON line appended to RESULTS
  local system="$1"; shift
  local port=$TANDEM_PORT opts=(--opt "server_pid=$T_PID" --opt "manage=$ROOT/.venv/bin/python $ROOT/manage.py")
  if [ "$system" = limit ]; then port=$LIMIT_PORT opts=(--opt "server_pid=$L_PID"); fi
  "$PY" "$PEERS_DIR/harness/bench.py" --adapter "$system" --base-url "http://127.0.0.1:$port" \
    --state "$WORK/state.json" --results "$RESULTS" --label "$RUN_ID/$system" "${opts[@]}" "$@" >/dev/null
}
system_of() { [ "${1:0:1}" = A ] && echo limit || echo tandem; }

say "run $RUN_ID: imports of $TASKS tasks in batches of $BATCHES; exports of $LABELS judgments"
for system in limit tandem; do harness "$system" check; harness "$system" annotators --count "$ANNOTATORS"; done
for batch in $BATCHES; do
  for pass in A1 B1 B2 A2; do
    say "import, batches of $batch, pass $pass ($(system_of $pass))"
    harness "$(system_of $pass)" import --n "$TASKS" --batch "$batch" --project-name "import-$batch-$pass"
  done
done
for pass in A1 B1; do
  say "labelling $LABELS tasks for the export ($(system_of $pass))"
  harness "$(system_of $pass)" import --n "$LABELS" --project-name "export-$pass"
  harness "$(system_of $pass)" annotate --project-name "export-$pass" \
    --concurrency "$ANNOTATORS" --max-ops-per-annotator $((LABELS / ANNOTATORS)) --duration 3600
done
for pass in A1 B1 B1 A1; do
  say "export of $LABELS judgments ($(system_of $pass))"
  harness "$(system_of $pass)" export --project-name "export-$pass" --out-dir "$WORK/exports"
done

"$PY" - "$RESULTS" "$RUN_ID" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if sys.argv[2] in line]
def mean(system, workload, key, **match):
    values = [r[key] for r in rows if r["label"].endswith("/" + system) and r.get("workload") == workload
              and r["project"].startswith(workload) and all(r.get(k) == v for k, v in match.items())]
    return statistics.mean(values) if values else float("nan")
print(f"\n{'workload':34} {'reference':>12} {'Tandem':>12} {'Tandem / ref':>13}")
# Only the import passes' projects: the export projects are imported through the same workload.
for batch in sorted({r["batch_size"] for r in rows if r.get("workload") == "import" and r["project"].startswith("import")}):
    ref, ours = (mean(s, "import", "tasks_per_s", batch_size=batch) for s in ("limit", "tandem"))
    print(f"{f'import, batches of {batch:,}: tasks/s':34} {ref:12,.0f} {ours:12,.0f} {ours / ref:13.2f}")
ref, ours = (mean(s, "export", "seconds") for s in ("limit", "tandem"))
print(f"{'export: seconds':34} {ref:12.2f} {ours:12.2f} {ref / ours:13.2f}  (time ratio ref / Tandem)")
for s, name in (("limit", "reference"), ("tandem", "Tandem")):
    growth = [r["peak_rss_single_proc_mb"] - r["peak_rss_pid_baseline_mb"] for r in rows
              if r["label"].endswith("/" + s) and r.get("workload") == "export"]
    sizes = {r["bytes"] for r in rows if r["label"].endswith("/" + s) and r.get("workload") == "export"}
    print(f"export, {name}: peak RSS growth of the serving process {', '.join(f'{g:.0f}' for g in growth)} MB; "
          f"{', '.join(f'{b / 1e6:.1f}' for b in sorted(sizes))} MB written")
EOF
say "JSON lines (label $RUN_ID/...) appended to $RESULTS"
