# The two entry points of the README: `make demo` (the main job) and `make test` (every test).
# Both provision first (idempotent; a second run takes under a second).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: provision demo test lint unit clean

provision:
	provision/setup

demo: provision
	$(VENV)/bin/swarm-bridge demo

lint: provision
	$(VENV)/bin/ruff check swarm_bridge test bench launch setup.py
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

unit: provision
	$(PY) -m pytest -q test/unit

clean:
	rm -rf .run build install log .pytest_cache .mypy_cache .ruff_cache
