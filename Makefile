# oddpix: `make repro` sets everything up and runs the default pipeline; `make test` sets up and tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The PyTorch build to install (override for another platform, e.g. TORCH_SPEC="torch torchvision").
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Datasets come from the mirror folder named by ODDPIX_DATA_MIRROR (or data.mirror in params.yaml) when
# set, else torchvision downloads them.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-fast bench photos clean-venv

setup: $(VENV)/.installed

# pip installs without compiling; the whole environment is then compiled to bytecode once, on every core
# (pip compiles file by file, more than a minute and a half of the set-up on two cores)
$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true
	touch $@

repro: setup
	dvc repro

# one worker per core (pytest-xdist); the tests that start Ray share one worker (xdist_group "ray")
PYTEST_PARALLEL ?= -n auto --dist loadgroup
test: setup
	python -m pytest $(PYTEST_PARALLEL)

test-fast: setup
	python -m pytest $(PYTEST_PARALLEL) -m "not slow"

# A benchmark preset (benchmarks/*.yaml); the default is the quick fingerprint on generated data.
PRESET ?= benchmarks/fingerprint.yaml
bench: setup
	oddpix bench $(PRESET)

# Real photos: ROOT an image folder (a sub-folder per class, a train/ test/ split, MVTec AD's layout or a
# flat folder with labels.csv), NORMAL its normal class; one DVC experiment with the real-photo settings.
ROOT ?=
NORMAL ?= good
CHANNELS ?= 3
MODEL ?= patch_knn
PHOTO_SETTINGS ?= -S preprocess.normalize=local
photos: setup
	@test -n "$(ROOT)" || { echo "error: make photos needs ROOT=<image folder> (and NORMAL=<its normal class>, default good)" >&2; exit 2; }
	@test -d "$(ROOT)" || { echo "error: ROOT=$(ROOT) is not a folder" >&2; exit 2; }
	dvc exp run -S data.dataset=folder -S data.protocol=folder -S 'data.folder.root=$(abspath $(ROOT))' \
	  -S 'data.normal_classes=[$(NORMAL)]' -S data.folder.channels=$(CHANNELS) -S model=$(MODEL) $(PHOTO_SETTINGS)

clean-venv:
	rm -rf $(VENV)
