# curate: one target per stage, each a call of the CLI. `make demo` and `make test` are the entry points.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
CURATE := $(VENV)/bin/curate
RECIPE ?= recipes/demo.yaml
WORKDIR ?= work/demo
RUN := $(CURATE) run $(RECIPE) --workdir $(WORKDIR)
SETUP := $(VENV)/.setup-done

.PHONY: setup demo test lint bench clean ingest exact-dedup

setup: $(SETUP)

# Creates the venv, installs the project with its test extra, fetches assets, builds the demo corpus.
$(SETUP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	$(CURATE) assets
	$(CURATE) sample data/demo
	touch $(SETUP)

demo: setup
	$(RUN)

test: setup
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check curate stats tests

bench: setup
	$(VENV)/bin/python -m curate.bench

clean:
	rm -rf work $(VENV) data/demo assets .cache

# ---- stages: each depends on the previous stage's manifest, so make runs only what is missing
$(WORKDIR)/ingest/_manifest.json: $(SETUP) $(RECIPE)
	$(RUN) --stages ingest
ingest: $(WORKDIR)/ingest/_manifest.json

$(WORKDIR)/exact_dedup/_manifest.json: $(WORKDIR)/ingest/_manifest.json
	$(RUN) --stages exact_dedup
exact-dedup: $(WORKDIR)/exact_dedup/_manifest.json
