# Two commands for learners: `make course` and `make test`. `make lab` opens JupyterLab.
# The environment (.venv) is created on first use from pyproject.toml + constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: course test lab env lint unit notebooks clean-build help

help:
	@echo "make course   run every notebook in order (COURSE_PROFILE=smoke|cpu|gpu), write build/ and a summary"
	@echo "make test     ruff + unit tests + every notebook under nbval in the smoke profile"
	@echo "make lab      open JupyterLab on notebooks/"

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is required, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

course: $(STAMP)
	$(BIN)/python -m course_utils.runner

test: $(STAMP)
	$(BIN)/ruff check course_utils tests notebooks benchmarks scripts
	COURSE_PROFILE=smoke $(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-build:
	rm -rf build/
