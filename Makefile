# Two commands on a fresh machine: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench docs lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a plain `torch` requirement would resolve to a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,plot]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: $(STAMP) lint
	$(PY) -m pytest src tests --cov=l0 --cov-report=term:skip-covered

demo: $(STAMP)
	$(VENV)/bin/l0 demo

docs: $(STAMP)
	$(PY) docs/build_api.py

bench: $(STAMP)
	$(PY) benchmarks/gates_speed.py
	$(PY) benchmarks/calibration_speed.py --readme
	$(PY) benchmarks/selection.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/geography.py
	$(PY) benchmarks/distributed.py
	$(PY) benchmarks/nn_lenet5.py --budget 0.15
	$(PY) benchmarks/nn_mnist.py --budget 0.35

clean:
	rm -rf $(VENV) .pytest_cache .coverage build src/*.egg-info docs/api
