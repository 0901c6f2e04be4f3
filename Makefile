# Every target creates its own virtual environment: a fresh clone needs only Python >= 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The Kubernetes resources (kustomization.yaml and the config copy are not resources).
K8S_RESOURCES := $(filter-out %/kustomization.yaml %/config.yaml,$(wildcard deploy/kubernetes/*.yaml))
# The replicas overlay's whole resources; its patches are checked as rendered, with the base, by
# tests/test_deploy.py (kubectl kustomize is not needed).
K8S_RESOURCES += deploy/kubernetes-replicas/pdb.yaml deploy/kubernetes-replicas/secret.example.yaml
# The oldest Kubernetes version the manifests must work on; they are checked against the newest
# schema kubernetes-validate ships as well.
K8S_MIN_VERSION := 1.30.0
# `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest allowed version.
LOCK_FLAGS ?=

.PHONY: venv demo test quick lint lint-deploy typecheck unit soak bench lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/notifier demo

lint: $(STAMP)
	$(BIN)/ruff check notifier tests
	$(BIN)/ruff format --check notifier tests

# The deployment files: the Dockerfile (no warning of any level) and every Kubernetes resource,
# strictly (unknown fields are errors). Compose and systemd are checked by tests/test_deploy.py.
lint-deploy: $(STAMP)
	$(BIN)/hadolint --failure-threshold style deploy/Dockerfile
	$(BIN)/kubernetes-validate --strict --quiet -k $(K8S_MIN_VERSION) $(K8S_RESOURCES)
	$(BIN)/kubernetes-validate --strict --quiet $(K8S_RESOURCES)

typecheck: $(STAMP)
	$(BIN)/mypy

# One pytest worker more than the machine has cores (at most 8): many tests wait on processes,
# sockets and leases, and the extra worker fills that idle time (2 cores: 3 min 43 s with two
# workers, 3 min 7 s with three).
WORKERS ?= $(shell $(PYTHON) -c "import os; n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1; print(min(n + 1, 8))")

unit: $(STAMP)
	$(BIN)/pytest -n $(WORKERS)

# ruff first (a second); then mypy and the deployment linters run alongside the suite, on the
# core pytest leaves free while it starts and while its last tests finish.
test: lint
	@$(MAKE) --no-print-directory -j3 typecheck lint-deploy unit

# The suite without the slow crash and container tests (they start notifier processes).
quick: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) -m "not slow and not soak"

# 2,000 accelerated cycles with churn; prints memory, file descriptor and state size figures.
soak: $(STAMP)
	$(BIN)/pytest -m soak -s -p no:cacheprovider -p no:logging

# The benchmark of issue 6 (bench/README.md): full and incremental cycles against a bare download
# floor at N = 1,000 / 10,000 / 100,000 (about 1.5 minutes); exits 1 when a target fails.
# `make bench BENCH_FLAGS="--sizes 100000 --profile"` profiles the large case.
BENCH_FLAGS ?=
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_FLAGS)

# deploy/requirements.lock: pyproject's runtime dependencies pinned with sha256 hashes, for the
# image (pip install --require-hashes). Run it with Python 3.11, the image's.
lock: $(STAMP)
	@$(BIN)/python -c 'import sys; sys.exit(None if sys.version_info[:2] == (3, 11) else "make lock: the image runs Python 3.11; recreate .venv with PYTHON=python3.11")'
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
	    --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	    --no-emit-trusted-host $(LOCK_FLAGS) --output-file deploy/requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
