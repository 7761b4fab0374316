# curate: one target per stage, each a call of the CLI. `make demo` and `make test` are the entry points.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
CURATE := $(VENV)/bin/curate
RECIPE ?= recipes/demo.yaml
WORKDIR ?= work/demo
RUN := $(CURATE) run $(RECIPE) --workdir $(WORKDIR)
SETUP := $(VENV)/.setup-done

.PHONY: setup training-extras demo test lint bench bench-scale stats clean publish ingest exact-dedup near-dedup language quality decontaminate redact tokenize pack

setup: $(SETUP)

# Creates the venv, installs the project with its test extra, fetches assets, builds the demo corpus.
$(SETUP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	$(MAKE) --no-print-directory training-extras
	$(CURATE) assets
	$(CURATE) sample data/demo
	$(CURATE) train-tokenizer recipes/demo.yaml --vocab-size 8192 --out assets/demo-tokenizer.json
	touch $(SETUP)

# The training side's optional parts: torch (the loader's DataLoader wrapper) and megatron-core (its own reader
# of the Megatron export), for their tests and make bench. torch comes only from a wheel pip finds without an
# index (a local CPU build; the registry's default build is several GB of CUDA): where there is none, both are
# left out and their tests are skipped, saying why.
training-extras:
	@if $(VENV)/bin/pip install --quiet --no-index --no-deps torch 2>/dev/null; then \
	  $(VENV)/bin/pip install --quiet torch 'megatron-core>=0.16,<0.20' && echo "torch and megatron-core installed"; \
	else echo "torch: no local wheel, so torch and megatron-core are not installed (their tests are skipped)"; fi

demo: setup
	$(RUN)

test: setup
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check curate stats tests

bench: setup
	$(VENV)/bin/python -m curate.bench

bench-scale: setup
	$(VENV)/bin/python -m curate.bench scale

# The dataset report of whatever stages exist in $(WORKDIR): report.md, report.html, stats.json, plots.
stats: setup
	$(CURATE) stats $(WORKDIR)

# make publish DEST=s3://bucket/prefix [ENDPOINT_URL=http://minio:9000]: uploads $(WORKDIR)'s shards and report.
publish: setup
	$(CURATE) publish $(WORKDIR) $(DEST) $(if $(ENDPOINT_URL),--endpoint-url $(ENDPOINT_URL))

clean:
	rm -rf work $(VENV) data/demo assets .cache

# ---- stages: each depends on the previous stage's manifest, so make runs only what is missing
$(WORKDIR)/ingest/_manifest.json: $(SETUP) $(RECIPE)
	$(RUN) --stages ingest
ingest: $(WORKDIR)/ingest/_manifest.json

$(WORKDIR)/exact_dedup/_manifest.json: $(WORKDIR)/ingest/_manifest.json
	$(RUN) --stages exact_dedup
exact-dedup: $(WORKDIR)/exact_dedup/_manifest.json

$(WORKDIR)/near_dedup/_manifest.json: $(WORKDIR)/exact_dedup/_manifest.json
	$(RUN) --stages near_dedup
near-dedup: $(WORKDIR)/near_dedup/_manifest.json

$(WORKDIR)/language/_manifest.json: $(WORKDIR)/near_dedup/_manifest.json
	$(RUN) --stages language
language: $(WORKDIR)/language/_manifest.json

$(WORKDIR)/quality/_manifest.json: $(WORKDIR)/language/_manifest.json
	$(RUN) --stages quality
quality: $(WORKDIR)/quality/_manifest.json

$(WORKDIR)/decontaminate/_manifest.json: $(WORKDIR)/quality/_manifest.json
	$(RUN) --stages decontaminate
decontaminate: $(WORKDIR)/decontaminate/_manifest.json

$(WORKDIR)/redact/_manifest.json: $(WORKDIR)/decontaminate/_manifest.json
	$(RUN) --stages redact
redact: $(WORKDIR)/redact/_manifest.json

# tokenize reads the nearest earlier stage present; this prerequisite is the latest stage target defined above
$(WORKDIR)/tokenize/_manifest.json: $(WORKDIR)/redact/_manifest.json
	$(RUN) --stages tokenize
tokenize: $(WORKDIR)/tokenize/_manifest.json

# pack writes $(WORKDIR)/shards/ (shard-NNNNN.arrow + manifest.json); its bookkeeping manifest is the file target
$(WORKDIR)/pack/_manifest.json: $(WORKDIR)/tokenize/_manifest.json
	$(RUN) --stages pack
pack: $(WORKDIR)/pack/_manifest.json
