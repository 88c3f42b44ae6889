# One entry point for developers, CI and newcomers. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Molecule keeps its per-scenario state inside the project, so clones do not collide.
export MOLECULE_EPHEMERAL_DIRECTORY_BASE := $(CURDIR)/.cache/molecule
# Each phase of `make test` records its time here; `make test` prints them at the end.
export JHTEST_TIMES := $(CURDIR)/.cache/test-times
TIMED := bash tests/env/timed.sh

SCENARIOS ?= default docker images jupyterhub upgrade backup offline swarm
# Scenarios whose subject does not depend on the Debian release run on Debian 12 only
# (backup and restore: tar and Docker volumes; the release-specific install is proven by
# the jupyterhub and offline scenarios on both).
ONE_RELEASE ?= backup

.PHONY: help venv testenv lint syntax unit check molecule integration test bench demo demo-test demo-clean clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt files/formspawner/pyproject.toml
	$(TIMED) venv bash -c '$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip \
	  && $(BIN)/pip install -q -r requirements.txt && $(BIN)/pip install -q -e files/formspawner'
	touch $@

venv: $(STAMP) ## Install the pinned controller toolchain into .venv

testenv: ## Start Docker and build/refresh the test images and registry (cached)
	$(TIMED) testenv bash tests/env/testenv.sh up

lint: $(STAMP) ## yamllint, ansible-lint (production profile) and ruff over the whole repo
	$(TIMED) lint bash -c '$(BIN)/yamllint --strict . && $(BIN)/ansible-lint --offline -q && $(BIN)/ruff check .'

syntax: $(STAMP) ## ansible-playbook --syntax-check of site.yml against the inventories
	$(TIMED) syntax bash -c 'for i in example swarm-example demo; do \
	  $(BIN)/ansible-playbook --syntax-check -i inventory/$$i site.yml || exit 1; done'

unit: $(STAMP) ## Unit tests (no Docker needed)
	$(TIMED) unit $(BIN)/pytest -q tests/unit

check: lint syntax unit ## The quick tier: lint, syntax check, unit tests

molecule: $(STAMP) testenv ## Every molecule scenario (SCENARIOS="a b" to choose)
	for s in $(SCENARIOS); do \
	  case " $(ONE_RELEASE) " in *" $$s "*) only="--platform-name jhtest-bookworm" ;; *) only= ;; esac; \
	  $(TIMED) molecule-$$s $(BIN)/molecule test -s $$s $$only || exit 1; \
	done

integration: $(STAMP) testenv ## Integration tests: a real hub and the real Docker engine
	$(TIMED) integration $(BIN)/pytest -q tests/integration

test: ## Everything CI runs (check, molecule, integration, demo-test), then each phase's time
	@mkdir -p .cache && : >$(JHTEST_TIMES)
	@rc=0; $(MAKE) --no-print-directory check molecule integration demo-test || rc=$$?; \
	  $(TIMED) --summary; exit $$rc

demo: $(STAMP) testenv ## Deploy the whole site into a local container; prints the URL and login
	$(TIMED) demo bash -c '$(BIN)/ansible-playbook playbooks/demo.yml && $(BIN)/ansible-playbook -i inventory/demo site.yml'
	@echo
	@echo "  JupyterHub is running: https://127.0.0.1:8443/  (self-signed certificate)"
	@echo "  Log in with any user name and the password demo-password (admin: user 'admin')."
	@echo

demo-test: demo ## The student's browser flow against the demo deployment
	$(TIMED) demo-test $(BIN)/pytest -q tests/demo

demo-clean: ## Remove the demo container and its Docker volume
	-docker rm -f jupyterhub-demo
	-docker volume rm jupyterhub-demo-docker

bench: $(STAMP) testenv ## Benchmarks (JSON to stdout and artifacts/): spawn vs stock DockerSpawner, repo launches
	mkdir -p artifacts
	$(BIN)/python benchmarks/spawn.py --out artifacts/bench-spawn.json
	$(BIN)/python benchmarks/repo.py --out artifacts/bench-repo.json
	$(BIN)/python benchmarks/lecture.py --out artifacts/bench-lecture.json
	$(BIN)/python benchmarks/playbook.py --out artifacts/bench-playbook.json

clean: ## Remove the venv and caches (images stay; see tests/env/testenv.sh)
	rm -rf $(VENV) .cache .pytest_cache
