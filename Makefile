# Every target installs what it needs into .venv first; the install is skipped when nothing changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip --quiet --disable-pip-version-check

.PHONY: install demo test test-slow mutants lint bench clean

install: $(STAMP)

# lava-nc 0.10.0 declares Python <3.11 and old pins: its dependencies come from pyproject.toml,
# then lava-nc itself without dependency resolution (targets/lava/compat.py makes it import on 3.11).
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps --ignore-requires-python lava-nc==0.10.0
	touch $(STAMP)

demo: install
	$(BIN)/snn-deploy demo --out runs/demo

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

mutants: install
	$(BIN)/python tests/mutants.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/mnist_mlp_accuracy.py
	$(BIN)/python benchmarks/simulator_throughput.py
	$(BIN)/python benchmarks/lava_throughput.py

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache
