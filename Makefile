# The verbs people reach for. Native mode runs everything as local processes;
# compose users run `docker compose up --build` instead.
.PHONY: run test test-quick lint format bench clean help

PYTHON := .venv/bin/python

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

run:  ## install what is missing, start the whole app on http://127.0.0.1:8080
	native/run.sh

test:  ## install what is missing, then lint and run every test tier
	native/bootstrap.sh --with-tests
	$(MAKE) lint
	$(PYTHON) -m pytest

test-quick:  ## unit tests only (no services)
	$(PYTHON) -m pytest tests/unit

lint:  ## ruff and mypy over every service and the tests
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy db-api/db_api chat-ui/chat_ui lm-api/lm_api native tests bench

format:  ## apply ruff's fixes and formatting
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

bench:  ## streaming benchmark: first token and tokens/s through the app vs llama.cpp directly
	native/bootstrap.sh
	$(PYTHON) -m bench.stream --runs 10

clean:  ## remove test artifacts and caches (keeps .data: your chats and the model)
	rm -rf test-artifacts .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
