# make train: set up .venv, train the default recipe (`fast`: one pass, about 4 s of training on 2 CPU
#             cores, about 13 s in all after set-up), evaluate it, predict the sample image.
# make test:  set up .venv with the dev extras and run the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RECIPE ?= fast
MODEL_DIR ?= runs/$(RECIPE)
# Extra `lenet train` options, e.g. make train TRAIN_ARGS="--steps 600".
TRAIN_ARGS ?=
# Where MNIST comes from: $LENET_DATA_DIR if set, else a sibling data checkout if there is one,
# else lenet downloads it into ~/.cache/lenet/mnist.
LENET_DATA_DIR ?= $(wildcard ../shared/data/mnist)
export LENET_DATA_DIR

.PHONY: train test setup clean bench-setup gate

$(BIN)/lenet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The CPU build of torch first, pinned, so nothing pulls the multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/lenet

# Retrain the digit gate that ships in the package (src/lenet/digit_gate.safetensors; see lenet/gate.py):
# about 15 minutes of one core, mostly drawing and reading the pictures it learns from.
gate: $(BIN)/lenet
	$(BIN)/python -m lenet.gate_training --digit-pictures 12000 --negatives 24000 --validation 3000 --epochs 3

train: $(BIN)/lenet
	$(BIN)/lenet train --recipe $(RECIPE) --model-dir $(MODEL_DIR) $(TRAIN_ARGS)
	$(BIN)/lenet eval --model-dir $(MODEL_DIR)
	$(BIN)/lenet predict --model-dir $(MODEL_DIR) examples/seven.png
	@echo "A seed's full schedule: make train RECIPE=tutorial-cnn (seed 000, 30,000 steps, about 37-47 min on 2 CPU cores); the other seeds' recipes: $(BIN)/lenet recipes"

test: $(BIN)/lenet
	$(BIN)/python -m pytest

# TensorFlow for the side-by-side baselines only (benchmarks/speed/compare_cpu.py); lenet never imports it.
bench-setup:
	$(PYTHON) -m venv .venv-tf
	.venv-tf/bin/pip install --quiet tensorflow-cpu==2.21.0

clean:
	rm -rf $(VENV) runs
