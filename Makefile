# oddpix: `make repro` sets everything up and runs the default pipeline; `make test` sets up and tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The PyTorch build to install (override for another platform, e.g. TORCH_SPEC="torch torchvision").
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# An offline dataset mirror (a folder holding mnist/, fashion-mnist/ ...): the sibling ../shared/datasets
# when it exists, unless ODDPIX_DATA_MIRROR is already set. Without one, data is downloaded by torchvision.
ODDPIX_DATA_MIRROR ?= $(abspath $(wildcard ../shared/datasets))
export ODDPIX_DATA_MIRROR
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-fast bench clean-venv

setup: $(VENV)/.installed

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

repro: setup
	dvc repro

test: setup
	python -m pytest

test-fast: setup
	python -m pytest -m "not slow"

bench: setup
	python benchmarks/accuracy.py

clean-venv:
	rm -rf $(VENV)
