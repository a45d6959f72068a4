# The two entry points of the README: `make demo` (the main job) and `make test` (every test).
# Both provision first (idempotent; a second run takes under a second).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: provision demo test lint unit clean vda5050-avro

provision:
	provision/setup

demo: provision
	$(VENV)/bin/swarm-bridge demo

lint: provision
	$(VENV)/bin/ruff check swarm_bridge test bench launch setup.py
	$(VENV)/bin/mypy

# Two workers (pytest-xdist), a test file each at a time: the integration tests mostly wait on brokers and processes.
TEST_WORKERS ?= 2

test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

unit: provision
	$(PY) -m pytest -q test/unit

# The Avro records of VDA 5050 (swarm_bridge/vda5050/avro/*.avsc) derived again from the official JSON Schemas:
# VDA5050=<folder holding json_schemas/> (default $SWARM_BRIDGE_VDA5050, else ../shared/data/vda5050).
vda5050-avro:
	$(PY) -m swarm_bridge.vda5050.avro_schemas $(if $(VDA5050),$(VDA5050)/json_schemas)

clean:
	rm -rf .run build install log .pytest_cache .mypy_cache .ruff_cache
