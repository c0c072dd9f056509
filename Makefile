# Two commands for learners: `make course` and `make test`. `make lab` opens JupyterLab.
# The environment (.venv) is created on first use from pyproject.toml + constraints.txt.
# Needs a POSIX shell (sh/bash: Linux, macOS, WSL or Git Bash on Windows) and Python >= 3.10 with venv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: course test test-gpu-profile test-browser lab env lint unit notebooks clean-build help

help:
	@echo "make course   run every notebook in order (COURSE_PROFILE=smoke|cpu|gpu), write build/ and a summary"
	@echo "make test     ruff + unit tests + every notebook under nbval in the smoke profile"
	@echo "make lab      open JupyterLab on notebooks/"
	@echo "make test-gpu-profile  every notebook in its gpu settings on this machine, training capped (~13 min)"
	@echo "make test-browser  a real browser: JupyterLab + headless Chromium run 01 and 02 and move a slider;"
	@echo "                   the offline HTML checked with the network blocked (installs Chromium if missing)"

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is required, found " + sys.version.split()[0]'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "Python's venv module is missing: on Debian/Ubuntu run 'sudo apt install python3-venv'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "Installing the course's requirements into $(VENV): about 6 GB on Linux (torch brings ~3 GB of CUDA"
	@echo "libraries even without a GPU), 5-15 minutes on a first run; pip shows its progress below."
	$(BIN)/python -m pip install --progress-bar on -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

course: $(STAMP)
	$(BIN)/python -m course_utils.runner

test: $(STAMP)
	$(BIN)/ruff check course_utils tests notebooks benchmarks scripts
	COURSE_PROFILE=smoke $(BIN)/python -m pytest

test-gpu-profile: $(STAMP)
	COURSE_PROFILE=smoke $(BIN)/python -m pytest tests/test_gpu_profile.py -p no:nbval -m gpu_profile -v

test-browser: $(STAMP)
	$(BIN)/python scripts/browser_setup.py
	COURSE_BROWSER_TESTS=1 COURSE_PROFILE=smoke $(BIN)/python -m pytest tests/browser -p no:nbval -o addopts="" -v -s

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-build:
	rm -rf build/
