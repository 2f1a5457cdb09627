# The two commands of the README: `make run` and `make test`. Both bootstrap first (idempotent).
SHELL := /bin/bash
PY := .venv/bin/python
PROFILE ?= config/profiles/lfp_16s.yaml

.PHONY: bootstrap run test test-core bench validate clean

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	@$(PY) -m bms_ros.tools.bringup --profile $(PROFILE) --status --request-state drive

# two pytest runs at once on the two cores: the ROS tests (nodes in processes, fail-safe bounds in
# wall time) and, niced so they yield, the tests without nodes; the second's report follows
test: bootstrap
	@mkdir -p log; \
	nice -n 10 $(PY) -m pytest -q -p no:cacheprovider test/core test/integration \
		> log/test_without_nodes.txt 2>&1 & without=$$!; \
	trap 'kill -TERM $$without 2>/dev/null' INT TERM; \
	$(PY) -m pytest -q test/ros; ros=$$?; \
	wait $$without; rest=$$?; \
	echo '--- test/core, test/integration (log/test_without_nodes.txt) ---'; \
	cat log/test_without_nodes.txt; \
	exit $$(( ros != 0 || rest != 0 ))

test-core: bootstrap
	@$(PY) -m pytest -q test/core

bench: bootstrap
	@$(PY) -m bench.run

# PyBaMM validation matrix (docs/estimation.md "Validation matrix"): the pinned validation venv,
# the new cells' files, the simulations not yet in test/fixtures/pybamm/matrix/, the manifest,
# then the scoreboard. Simulations take ~20 s each; delete a fixture to re-simulate it.
VPY := .venv-validation/bin/python
validate: bootstrap
	@test -x $(VPY) || (python3 -m venv .venv-validation && \
		$(VPY) -m pip install -q -r bench/validation/requirements.txt)
	@nice -n 10 $(VPY) bench/validation/make_matrix.py cells
	@nice -n 10 $(VPY) bench/validation/make_matrix.py simulate
	@$(PY) bench/validation/make_matrix.py manifest
	@$(PY) -m bench.estimation_matrix

clean:
	rm -rf build log .venv
