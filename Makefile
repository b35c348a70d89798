# minicoder: every target creates .venv and installs what it needs (idempotent, quick when done).
#   make test          run the test suite (what CI runs)
#   make train-tiny    train the tiny preset on this machine's Python standard library
#   make train-tiny-moe    the same with DeepSeek-V2's architecture (MLA, DeepSeekMoE): tiny-moe
#   make student ASSIGNMENT=tokenizer OUT=/tmp/student   make a stubbed student copy
#   make grade ASSIGNMENT=tokenizer STUDENT=/tmp/student grade a student copy with the same tests
#   make chapters      open the chapters in JupyterLab, with this environment's kernel
#   make chapters-build [CHAPTER=04]   execute chapter sources (chapters/NN_topic.py) into their notebooks
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch; on a GPU machine install the CUDA build into .venv first (see README).
TORCH_SPEC ?= torch==2.13.0
# OpenMP's default spin-waiting makes torch several times slower on a small machine that runs
# anything else at the same time (measured 3.6x on 2 cores); passive waiting costs nothing alone.
OMP_WAIT_POLICY ?= PASSIVE
export OMP_WAIT_POLICY

.PHONY: setup test test-fast lint train-tiny train-tiny-moe student grade chapters chapters-build bench-tokenizer bench-train bench-train-tiny bench-data bench-mla-moe clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

test: setup
	$(VENV)/bin/pytest -q

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check minicoder tests benchmarks

train-tiny: setup
	$(VENV)/bin/minicoder train-tiny

train-tiny-moe: setup
	$(VENV)/bin/minicoder train-tiny --preset tiny-moe

student: setup
	@test -n "$(ASSIGNMENT)" -a -n "$(OUT)" || { echo "usage: make student ASSIGNMENT=tokenizer OUT=DIR"; exit 2; }
	$(VENV)/bin/minicoder assignment make $(ASSIGNMENT) --out $(OUT)

grade: setup
	@test -n "$(ASSIGNMENT)" -a -n "$(STUDENT)" || { echo "usage: make grade ASSIGNMENT=tokenizer STUDENT=DIR [QUICK=1]"; exit 2; }
	$(VENV)/bin/minicoder assignment grade $(ASSIGNMENT) --student $(STUDENT) $(if $(QUICK),--quick)

# JupyterLab refuses to run as root (a container's user) without --allow-root.
chapters: setup
	$(VENV)/bin/jupyter lab chapters/ $(if $(filter 0,$(shell id -u)),--allow-root)

chapters-build: setup
	$(PY) chapters/build.py $(CHAPTER)

bench-tokenizer: setup
	$(PY) benchmarks/tokenizer.py

bench-train-tiny: setup
	$(PY) benchmarks/train_tiny.py --cold

bench-train: setup
	$(PY) benchmarks/train.py

bench-data: setup
	$(PY) benchmarks/data.py

bench-mla-moe: setup
	$(PY) benchmarks/mla_moe.py

clean:
	rm -rf $(VENV) .cache runs
