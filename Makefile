# LAYER platform — every set-up step a fresh machine needs lives here.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Demo cohort size; `make demo SUBJECTS=60` for a larger one.
SUBJECTS ?= 40
SEED     ?= 7
# Bench scale: tiny (smoke), default (this CPU, ~35 min) or paper (one GPU).
SCALE    ?= default
# Test processes (pytest-xdist): much of the suite waits on subprocesses, daemons and disks, so
# a 2-core machine runs it faster in three: pytest took 12.4 and 13.9 min in two runs with three
# processes, 15.0 with two. `make test TEST_WORKERS=0` runs it in this process.
TEST_WORKERS ?= 3

.PHONY: install demo test lint dev bench clean

install: $(STAMP)

# torch: on a machine without an NVIDIA driver take the CPU build (a plain `torch` would pull
# a multi-GB CUDA build); with a GPU the project's `torch>=2.13` range picks the CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/layer-platform simulate --subjects $(SUBJECTS) --seed $(SEED)
	$(BIN)/layer-platform run
	$(BIN)/layer-platform status
	$(BIN)/layer-platform ranking

test: install
	$(BIN)/ruff check layer_platform layer_platform_tests
	$(BIN)/dg check defs
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=15

lint: install
	$(BIN)/ruff check layer_platform layer_platform_tests
	$(BIN)/ruff format --check layer_platform layer_platform_tests

dev: install
	$(BIN)/layer-platform dev

# Benchmarks vs baselines measured in the same run; the report lands in bench/results/ and a
# copy in bench/results/latest/ (committed). `make bench SCALE=paper` on a GPU machine.
bench: install
	$(BIN)/python -m bench --scale $(SCALE) --publish bench/results/latest

clean:
	rm -rf .layer_home .pytest_cache .ruff_cache
