# One command to set up and run the main job, one to run the tests (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANIFEST ?= manifests/quickstart.yaml

.PHONY: setup quickstart test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

quickstart: setup  ## validate, apply and list the quickstart on the local backend
	$(BIN)/foundryctl validate -f $(MANIFEST)
	$(BIN)/foundryctl apply -f $(MANIFEST) --auto-approve
	$(BIN)/foundryctl state list -f $(MANIFEST)

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_core.py

clean:
	rm -rf $(VENV) manifests/.foundryctl
