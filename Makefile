# The README's two commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-cluster test-pythons lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(BIN)/python setup.cfg
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/ruff check .
	sh scripts/ensure-debs.sh chromium chromium-driver nginx wrk
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-cluster: $(STAMP)
	ITEMSEAL_TEST_STORE=cluster $(BIN)/python -m pytest -n 2 --dist loadgroup -m "not browser"

# The suite on every supported Python this machine has (3.11-3.13, setup.cfg), each in its own
# .venv-3.X; says which are missing. Not part of `make test`.
test-pythons:
	sh scripts/test-pythons.sh $(PYTHONS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_mint.py

clean:
	rm -rf $(VENV) .venv-3.* .itemseal out
