# Two entry points on a fresh clone (only Python 3.11 needed):
#   make run   - runs the pipeline on the bundled KuaiRand-Pure data (outputs/ ...)
#   make test  - runs the test suite: unit tests and one pipeline run on the fixture
#   make refresh - a daily refresh of the latest release on the logs' newest day
#                (beyond the paper; README, Daily refresh)
#   make test-extended - the further pipeline runs on the fixture (paper preset, cache,
#                a killed trainer, bad input, an anomaly) and every baseline's training
#                and SavedModel checks; CI runs them after make test
#   make experiments - the DSMOE paper's tables and figures (ARGS="--quick": a fast check)
#   make rankers - the ranking stage's study: every ranker's AUC/GAUC per scenario and task
# Both create .venv from requirements.lock first when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

# Every process of the project needs Keras 2 behind tf.keras (TFRS refuses Keras 3).
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 1
export PYTHONPATH := $(CURDIR)

.PHONY: run refresh test test-extended experiments rankers venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; this project needs CPython 3.11 (set PYTHON=/path/to/python3.11)"; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { echo "error: $(PYTHON) is not Python 3.11; set PYTHON=/path/to/python3.11"; exit 2; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-deps --disable-pip-version-check -r requirements.lock
	touch $@

run: venv
	$(PY) -m pipeline.local_runner $(ARGS)

refresh: venv
	$(PY) -m pipeline.local_runner --refresh $(ARGS)

test: venv
	$(PY) -m pytest tests -m "not extended" $(ARGS)

test-extended: venv
	$(PY) -m pytest tests -m extended $(ARGS)

experiments: venv
	$(PY) -m experiments.reproduce $(ARGS)

rankers: venv
	$(PY) -m experiments.rankers $(ARGS)

clean:
	rm -rf outputs
