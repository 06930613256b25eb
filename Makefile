# Every target installs what it needs into .venv first; the install is skipped when nothing changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/pip --quiet --disable-pip-version-check

.PHONY: install demo demo-mnist test test-slow mutants lint bench bench-lava-mnist pretrained-mnist clean conformance \
	interop docs

install: $(STAMP)

# lava-nc 0.10.0 declares Python <3.11 and old pins: its dependencies come from pyproject.toml,
# then lava-nc itself without dependency resolution (targets/loihi2/lava/compat.py makes it import on 3.11).
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps --ignore-requires-python lava-nc==0.10.0
	# The frameworks whose NIR files the tests import. Norse and SpikingJelly pin newer torch and
	# torchvision they do not need for this: they go in without their dependencies.
	$(PIP) install nirtorch==2.6 snntorch==1.0.0 "loguru>=0.7,<1"
	$(PIP) install --no-deps norse==1.1.0 spikingjelly==2.0.0
	# Sinabs pins nir <= 1.0.4 and samna (the Speck chip's driver); Rockpool pulls its optional
	# backends. Neither is needed to run and export their torch networks.
	$(PIP) install --no-deps sinabs==3.1.3 pbr==7.1.3 rockpool==3.1.0
	# The compiled kernels (toolchain/native.py), built once here: TSSL-BP's and the simulator's.
	$(BIN)/python -c "from toolchain.train.methods.fused import fused_kernel as k; k()"
	$(BIN)/python -c "from targets.loihi2.simulator import population_kernel as k; k()"
	touch $(STAMP)

demo: install
	$(BIN)/snn-deploy demo --out runs/demo

# The shipped MNIST CNN: all 10 000 test images in float and fixed point, 200 on Lava (minutes).
demo-mnist: install
	$(BIN)/snn-deploy demo --dataset mnist --out runs/demo-mnist --workers 2

# Rebuilds examples/pretrained/mnist_cnn/ from scratch (about 3 hours on 2 cores).
PRETRAINED := examples/pretrained/mnist_cnn
pretrained-mnist: install
	$(BIN)/snn-deploy train --config $(PRETRAINED)/config.toml --out runs/mnist-cnn
	cp runs/mnist-cnn/best.pt $(PRETRAINED)/model.pt
	cp runs/mnist-cnn/metrics.json runs/mnist-cnn/metrics.png $(PRETRAINED)/
	$(BIN)/snn-deploy quantize $(PRETRAINED)/model.pt --out $(PRETRAINED)/fixed.onnx

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

mutants: install
	$(BIN)/python tests/mutants.py

conformance: install
	$(BIN)/python tools/conformance.py

# The documentation site in site/ (MkDocs, strict: a broken link fails), with the generated
# command-line reference.
docs: install
	$(BIN)/python tools/docs.py --site site

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/peers.py
	$(BIN)/python benchmarks/mnist_mlp_accuracy.py
	$(BIN)/python benchmarks/simulator_throughput.py
	$(BIN)/python benchmarks/torch_simulator.py
	$(BIN)/python benchmarks/core_scaling.py
	$(BIN)/python benchmarks/lava_throughput.py
	$(BIN)/python benchmarks/loihi2_plan.py

# The shipped MNIST CNN on Lava for all 10 000 test images (hours; resumes where it stopped).
bench-lava-mnist: install
	$(BIN)/python benchmarks/lava_mnist.py

# The real lava-dl as a check (tests/interop/): lava-dl 0.6.0 runs our netx files and its own in a
# venv of its own, as it needs Python 3.10 and torch 2.3 (our package needs 3.11). tools/python310
# finds a Python 3.10 ($PYTHON310, python3.10, or pyenv's installed 3.10 where python3.10 is only
# a shim); without one: `pyenv install 3.10`. Where PyTorch's CPU-only index cannot be reached,
# torch comes from PyPI with its CUDA libraries: about 2.5 GB to download, 5.6 GB installed (2.5
# minutes on a fast link).
export PYTHON310  # tools/python310 reads it where it is given
LAVA_DL_VENV    := .venv-lava-dl
LAVA_DL_STAMP   := $(LAVA_DL_VENV)/.installed
LAVA_DL_REQS    := tests/interop/requirements.txt
LAVA_DL_PIP     := $(LAVA_DL_VENV)/bin/pip --quiet --disable-pip-version-check
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

interop: install $(LAVA_DL_STAMP)
	$(BIN)/python -m pytest -q -m interop tests/interop

# torch from PyTorch's CPU-only index where it is reachable, else PyPI's (with CUDA libraries).
$(LAVA_DL_STAMP): $(LAVA_DL_REQS)
	test -x $(LAVA_DL_VENV)/bin/python || "$$(tools/python310)" -m venv $(LAVA_DL_VENV)
	$(LAVA_DL_PIP) install --retries 1 --timeout 30 --index-url $(TORCH_CPU_INDEX) \
		$$(grep -E '^torch(vision)?==' $(LAVA_DL_REQS)) 2>/dev/null \
		|| { echo "CPU index unreachable, installing torch from the default index"; \
		     $(LAVA_DL_PIP) install $$(grep -E '^torch(vision)?==' $(LAVA_DL_REQS)); }
	$(LAVA_DL_PIP) install -r $(LAVA_DL_REQS)
	touch $(LAVA_DL_STAMP)

clean:
	rm -rf $(VENV) runs build site *.egg-info .pytest_cache
