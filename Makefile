# `make demo`, `make test` and `make docs` each do all their own set-up from a bare Python >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
STAMP_DOCS := $(VENV)/.installed-docs

.PHONY: demo test docs clean bytecode

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The package's bytecode, as a wheel's install writes it (an editable install leaves
# it to the first import, which PYTHONDONTWRITEBYTECODE stops: each process would
# compile every module again). Quick when nothing changed.
bytecode: $(STAMP_RUN)
	$(BIN)/python -m compileall -q batchproc

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(STAMP_RUN) $(STAMP_DOCS)

$(STAMP_DOCS): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@ $(STAMP_RUN)

demo: bytecode
	$(BIN)/python -m batchproc.demo demo-output

# Lint and format (ruff, configured in pyproject.toml), then the whole suite.
test: $(STAMP_TEST) bytecode
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The documentation site, strict (a broken link or reference fails), into site/.
docs: $(STAMP_DOCS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-output site .pytest_cache .hypothesis
