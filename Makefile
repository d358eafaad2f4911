# carbonshift — developer entry points. `make demo` and `make test` are the two a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DIST ?= dist
# This checkout's package, whatever the venv's editable install points at (e.g. a shared venv).
export PYTHONPATH := $(CURDIR)/operator$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: help install tools lint test test-unit test-chaos demo demo-stop cluster-up cluster-down cluster-status crds test-chart chart image image-engine-stop bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed tools ## Python packages (.venv), Debian packages and pinned binaries

tools: ## build/install etcd, kube-apiserver, controller-manager, scheduler, kwok, helm, prometheus (cached)
	bash hack/tools.sh >/dev/null

lint: $(VENV)/.installed ## ruff on all Python code, mypy (strict on core/ and api/); config in pyproject.toml
	$(VENV)/bin/ruff check operator tests bench hack
	$(VENV)/bin/mypy

test: install lint ## install what is missing, lint, then run every test (starts the local control plane)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(VENV)/.installed ## tests that need no servers and no built tools (no hack/tools.sh)
	$(PY) -m pytest -m 'not cluster and not prometheus and not tools' $(PYTEST_ARGS)

test-chaos: install ## the full fault-injection, bad-input and security suite (its own control plane; long)
	CARBONSHIFT_CHAOS=1 $(PY) -m pytest tests/chaos $(PYTEST_ARGS)

demo: install ## run the operator on the local control plane and show its decisions
	cd hack && ../$(PY) demo.py

cluster-up: tools ## start the local multi-region control plane (hub, eu-de, eu-gb, us-ca)
	hack/cluster up

cluster-down: ## stop it
	hack/cluster down

cluster-status: ## what runs
	hack/cluster status

crds: $(VENV)/.installed ## regenerate crds/ from the pydantic models, and the chart's copy
	$(PY) -m carbonshift.api.crdgen
	bash hack/sync-chart-crds.sh

bench: install ## run benchmarks and rewrite docs/benchmarks.md
	bash hack/bench.sh

clean: cluster-down
	rm -rf .state

demo-stop: ## stop everything `make demo` started
	cd hack && ../$(PY) demo.py stop

test-chart: tools $(VENV)/.installed ## chart lint, goldens, schema, alerts (promtool), package, install and CRD upgrade on the hub
	$(PY) -m pytest tests/chart $(PYTEST_ARGS)

chart: tools ## package the chart as users get it: $(DIST)/carbonshift-<version>.tgz (push: docs/install.md)
	bash hack/sync-chart-crds.sh --check
	mkdir -p $(DIST)
	"$$(bash hack/tools.sh | tail -1)/helm" package charts/carbonshift --destination $(DIST)

image: ## build the operator image ghcr.io/carbonshift/carbonshift:<version> with the project's own engine (no registry needed)
	$(PYTHON) hack/engine.py build

image-engine-stop: ## stop the container engine `make image` started (dockerd, containerd)
	$(PYTHON) hack/engine.py down
