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
# community.docker's API timeout (molecule's create and destroy use it): removing a swarm
# manager's container took over the default 60 s once on a loaded 2-core machine.
export DOCKER_TIMEOUT := 180
# Each phase of `make test` records its time here; `make test` prints them at the end.
export JHTEST_TIMES := $(CURDIR)/.cache/test-times
TIMED := bash tests/env/timed.sh

SCENARIOS ?= default docker images jupyterhub upgrade backup offline swarm
# Each Debian release gets the whole site, not every scenario twice: offline runs on Debian
# 13; default, images, backup, upgrade and the swarm's manager on Debian 12 (a swarm worker
# on 13); docker, whose install differs most between releases, and jupyterhub, whose HTTPS
# from an ACME CA (certbot, nginx) differs between releases, on both. A scenario named in
# neither list runs on every platform its molecule.yml gives.
ON_BOOKWORM ?= default images backup
ON_TRIXIE ?= offline
# Targets with the site's Debian packages already installed (jhtest/server:*-site) for the
# scenarios that check what the roles configure: installing Docker, Node and git took each
# target about a minute of CPU. Installs stay tested on bare targets in docker, offline,
# backup's restore and the demo.
ON_SITE_IMAGE ?= jupyterhub swarm images backup upgrade

.PHONY: help venv testenv testenv-demo lint syntax unit check mutation molecule integration test quick lane-a lane-b bench demo demo-test demo-clean clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt files/formspawner/pyproject.toml
	$(TIMED) venv bash -c '$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip \
	  && $(BIN)/pip install -q -r requirements.txt && $(BIN)/pip install -q -e files/formspawner'
	touch $@

venv: $(STAMP) ## Install the pinned controller toolchain into .venv

testenv: ## Start Docker and build/refresh the test images and registry (cached)
	$(TIMED) testenv bash tests/env/testenv.sh up

# What the demo needs only (6 of the 11 test images): a newcomer's first command.
testenv-demo:
	$(TIMED) testenv-demo bash tests/env/testenv.sh demo

lint: $(STAMP) ## yamllint, ansible-lint (production profile) and ruff over the whole repo
	$(TIMED) lint bash -c '$(BIN)/yamllint --strict . && $(BIN)/ansible-lint --offline -q && $(BIN)/ruff check .'

syntax: $(STAMP) ## ansible-playbook --syntax-check of site.yml against the inventories
	$(TIMED) syntax bash -c 'for i in example swarm-example demo; do \
	  $(BIN)/ansible-playbook --syntax-check -i inventory/$$i site.yml || exit 1; done'

# Two workers (pytest-xdist): most unit tests wait on a subprocess (ansible-playbook rendering
# the role's files, a hub loading its config), so two halve the tier's time (267 -> 134 s).
# The quota service's tests use a real btrfs on a loop device (root, btrfs-progs).
unit: $(STAMP) ## Unit tests (no Docker needed)
	$(TIMED) unit bash -c 'bash tests/env/testenv.sh unit && $(BIN)/pytest -q -n 2 tests/unit'

check: lint syntax unit ## The quick tier: lint, syntax check, unit tests

MUTATION_STAMP := $(VENV)/.mutation-installed
$(MUTATION_STAMP): $(STAMP) tests/mutation/requirements.txt
	$(BIN)/pip install -q -r tests/mutation/requirements.txt
	touch $@

mutation: $(MUTATION_STAMP) ## Mutation testing of formspawner's protections (slow; not in make test)
	$(TIMED) mutation bash tests/mutation/run.sh

# The scenarios named in $(1), one after another, each on the platforms ON_* give it.
define run_scenarios
for s in $(1); do \
  only=; \
  case " $(ON_BOOKWORM) " in *" $$s "*) only="--platform-name jhtest-bookworm-$$s" ;; esac; \
  case " $(ON_TRIXIE) " in *" $$s "*) only="--platform-name jhtest-trixie-$$s" ;; esac; \
  suffix=; case " $(ON_SITE_IMAGE) " in *" $$s "*) suffix=-site ;; esac; \
  JHTEST_SERVER_SUFFIX=$$suffix $(TIMED) molecule-$$s $(BIN)/molecule test -s $$s $$only || exit 1; \
done
endef
INTEGRATION := $(TIMED) integration $(BIN)/pytest -q --durations=15 tests/integration
DEMO := $(TIMED) demo bash -c '$(BIN)/ansible-playbook playbooks/demo.yml && $(BIN)/ansible-playbook -i inventory/demo site.yml'
DEMO_TEST := $(TIMED) demo-test $(BIN)/pytest -q tests/demo

molecule: $(STAMP) testenv ## Every molecule scenario (SCENARIOS="a b" to choose)
	$(call run_scenarios,$(SCENARIOS))

integration: $(STAMP) testenv ## Integration tests: a real hub and the real Docker engine
	$(INTEGRATION)

# CI stops a run at 90 min and prints nothing more; `make test` stops its own phases first
# (tests/env/timed.sh), so the per-phase summary is always printed.
TEST_BUDGET_MIN ?= 84
# `make test` runs two lanes side by side once the test images are built: the cores are
# idle much of the time a scenario waits on its targets (apt, pip, Docker, a spawn). Every
# scenario's targets carry its name (.config/molecule/config.yml), so any scenario can go
# in either lane; the lanes are balanced by their last measured times (docs/development.md).
# Every line a lane prints starts with its name.
LANE_A ?= swarm jupyterhub backup docker default
LANE_B ?= upgrade offline images

# One make with four jobs, following what each part needs: the controller's venv and the
# test images start together (one waits on PyPI, the other on Debian's archive and
# Docker); the quick tier, which needs only the venv, starts as soon as the venv is there,
# in the cores' idle moments while images build and beside the lanes; the two lanes start
# once the images are built: lane A = LANE_A's scenarios, the demo and its browser test;
# lane B = LANE_B's scenarios and integration. (Until stop 43 the quick tier stood before
# the lanes: 4-6 min of the run.) A failed quick-tier phase stops both lanes before their
# next phase (JHTEST_STOP, tests/env/timed.sh), so a lint error still fails the run within
# minutes.
test: ## Everything CI runs (check, molecule, integration, demo-test), then each phase's time
	$(if $(filter-out $(LANE_A) $(LANE_B),$(SCENARIOS)),$(error $(filter-out $(LANE_A) $(LANE_B),$(SCENARIOS)): in SCENARIOS but in neither LANE_A nor LANE_B, so make test would skip it))
	@mkdir -p .cache && : >$(JHTEST_TIMES) && rm -f $(TEST_STOP)
	@rc=0; export JHTEST_STARTED=$$(date +%s) JHTEST_STOP=$(TEST_STOP); \
	  export JHTEST_DEADLINE=$$(( JHTEST_STARTED + $(TEST_BUDGET_MIN) * 60 )); \
	  $(MAKE) --no-print-directory -j4 lane-a lane-b quick || rc=$$?; \
	  $(TIMED) --summary; exit $$rc

# The file a failed quick-tier phase of `make test` writes its name to (JHTEST_STOP).
TEST_STOP := $(CURDIR)/.cache/test-stop

quick: $(STAMP)
	JHTEST_STOP_OTHERS=1 $(MAKE) --no-print-directory -j2 --output-sync=target check 2>&1 | sed -u 's/^/[quick] /'

lane-a: $(STAMP) testenv
	( $(call run_scenarios,$(LANE_A)) && $(DEMO) && $(DEMO_TEST) ) 2>&1 | sed -u 's/^/[lane A] /'

lane-b: $(STAMP) testenv
	( $(call run_scenarios,$(LANE_B)) && $(INTEGRATION) ) 2>&1 | sed -u 's/^/[lane B] /'

demo: $(STAMP) testenv-demo ## Deploy the whole site into a local container; prints the URL and login
	$(DEMO)
	@echo
	@echo "  JupyterHub is running: https://127.0.0.1:8443/  (self-signed certificate)"
	@echo "  Log in with any user name and the password demo-password (admin: user 'admin')."
	@echo

demo-test: demo testenv ## The student's browser flow against the demo deployment
	$(DEMO_TEST)

demo-clean: ## Remove the demo container and its Docker volume
	-docker rm -f jupyterhub-demo
	-docker volume rm jupyterhub-demo-docker

bench: $(STAMP) testenv ## Benchmarks (JSON to stdout and artifacts/): spawn vs stock DockerSpawner, repo launches, quotas, capacity
	mkdir -p artifacts
	$(BIN)/python benchmarks/spawn.py --out artifacts/bench-spawn.json
	$(BIN)/python benchmarks/spawn.py --profiles --out artifacts/bench-spawn-profiles.json
	$(BIN)/python benchmarks/profiles.py --out artifacts/bench-profiles.json
	$(BIN)/python benchmarks/repo.py --out artifacts/bench-repo.json
	$(BIN)/python benchmarks/content.py --out artifacts/bench-content.json
	$(BIN)/python benchmarks/lecture.py --out artifacts/bench-lecture.json
	$(BIN)/python benchmarks/build_flood.py --out artifacts/bench-build-flood.json
	$(BIN)/python benchmarks/quota.py --out artifacts/bench-quota.json
	$(BIN)/python benchmarks/user_ids.py --out artifacts/bench-user-ids.json
	$(BIN)/python benchmarks/capacity.py --out artifacts/bench-capacity.json
	$(BIN)/python benchmarks/healthcheck.py --out artifacts/bench-healthcheck.json
	$(BIN)/python benchmarks/playbook.py --out artifacts/bench-playbook.json

clean: ## Remove the venv and caches (images stay; see tests/env/testenv.sh)
	rm -rf $(VENV) .cache .pytest_cache
