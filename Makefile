# The two commands of the README: `make run` and `make test`. Both bootstrap first (idempotent).
SHELL := /bin/bash
PY := .venv/bin/python
PROFILE ?= config/profiles/lfp_16s.yaml

.PHONY: bootstrap run test test-core bench validate clean

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	@$(PY) -m bms_ros.tools.bringup --profile $(PROFILE) --status --request-state drive

test: bootstrap
	@$(PY) -m pytest -q

test-core: bootstrap
	@$(PY) -m pytest -q test/core

bench: bootstrap
	@$(PY) -m bench.run

clean:
	rm -rf build log .venv
