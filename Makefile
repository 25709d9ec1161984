# The verbs people reach for. Native mode runs everything as local processes;
# compose users run `docker compose up --build` instead.
.PHONY: run admin backup restore test test-native test-quick test-compose lint format bench clean help

PYTHON := .venv/bin/python

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

run:  ## install what is missing, start the whole app on http://127.0.0.1:8080
	native/run.sh

backup:  ## back up native mode's chats and session key to backups/ (or FILE=...)
	$(PYTHON) -m native.backup backup $(if $(FILE),--output "$(FILE)")

restore:  ## restore FILE=... into native mode, stopped; FORCE=1 replaces existing users
	$(PYTHON) -m native.backup restore $(if $(FILE),"$(FILE)") $(if $(filter 1,$(FORCE)),--force)

admin:  ## operator commands on native mode's accounts: ARGS="create-admin NAME" (or make-admin, reset-password, list-users)
	$(PYTHON) -m native.admin $(ARGS)

test:  ## install what is missing, then lint and run every test tier (needs root for Docker)
	native/bootstrap.sh --with-tests
	docker/prepare.sh --timings
	$(MAKE) lint
	$(PYTHON) -m pytest --durations=30 tests/unit tests/inprocess tests/db_api tests/lm_api tests/chat_ui tests/e2e tests/compose

test-native:  ## tiers 1-3 only: unit, in-process, integration, browser (no Docker)
	native/bootstrap.sh --with-tests
	$(MAKE) lint
	$(PYTHON) -m pytest

test-quick:  ## unit and in-process tests (no services; under a minute)
	$(PYTHON) -m pytest tests/unit tests/inprocess

test-compose:  ## tier 4 only: Docker engine + stand-in images, the real compose.yml end to end
	native/bootstrap.sh --with-tests
	docker/prepare.sh --timings
	$(PYTHON) -m pytest tests/compose; status=$$?; \
	  cat test-artifacts/compose/timings.json 2>/dev/null; exit $$status

lint:  ## ruff and mypy over every service, the test harness and the tests
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy db-api/db_api chat-ui/chat_ui lm-api/lm_api native harness tests bench

format:  ## apply ruff's fixes and formatting
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

bench:  ## benchmark the native stack against baselines; report in docs/benchmarks/ (~15 min)
	native/bootstrap.sh --with-bench
	$(PYTHON) -m bench

clean:  ## remove test artifacts and caches (keeps .data: your chats and the model)
	rm -rf test-artifacts .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
