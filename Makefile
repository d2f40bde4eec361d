# Two commands work on a fresh clone: `make example` and `make test`.
# The virtual environment is created on first use and refreshed when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch that lies on this machine's disk; an unpinned torch pulls a CUDA build.
TORCH := torch==2.13.0

.PHONY: example test lint docs clean gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev,docs]"
	touch $(STAMP)

# The main example: list the plugins, then solve high-frequency Poisson problems with gp-pde
# (prints the error table, writes outputs/poisson_highfreq.png).
example: $(STAMP)
	$(BIN)/sciml plugins
	$(BIN)/sciml run poisson_highfreq

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check .

docs: $(STAMP)
	$(BIN)/mkdocs build --strict -q

# On a machine with a CUDA GPU: GPU tests and the GPU halves of the Bessel and Kronecker benchmarks,
# one summary table (about 5 minutes). Elsewhere it prints one "skipped" line and succeeds.
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) .venv-gpu site build *.egg-info
