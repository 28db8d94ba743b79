# clinicops — two commands set everything up on a fresh Debian machine:
#   make demo   venv + collection + Docker engine + lab image, 3 lab clinics, a first real job
#   make test   every quality gate and test suite (what CI runs)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COLLECTION := $(CURDIR)/build/collections/ansible_collections/clinicops/runbook

export CLINICOPS_PROJECT_ROOT := $(CURDIR)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/build/collections
export ANSIBLE_PIPELINING := True
export PATH := $(BIN):$(PATH)

.PHONY: help venv collection lab demo demo-down test lint sanity unit integration molecule bench bench-deploy bench-cli bench-logs bench-flags clean

help:
	@echo "make demo   - set up everything and run the lab demo (3 clinics: health, backup, drill, deploy in waves, maintenance, log rotation)"
	@echo "make test   - run every quality gate and test suite (CI runs this)"
	@echo "make lint | sanity | unit | integration | molecule | bench | bench-deploy | bench-cli | bench-logs | bench-flags | demo-down | clean"

$(STAMP): pyproject.toml requirements/constraints.txt
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
	  echo "installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e '.[test]'
	touch $@

venv: $(STAMP)

collection: venv
	@$(BIN)/python -c 'from clinicops.project import collections_root; collections_root()'

lab: collection
	$(BIN)/clinicops lab up --clinics 3

demo: lab
	$(BIN)/clinicops health
	$(BIN)/clinicops backup
	$(BIN)/clinicops drill
	$(BIN)/clinicops health --checklist morning
	$(BIN)/clinicops deploy --version 2.0.0
	@echo "clinicops: next, a release whose health check fails: the canary must roll back by itself"
	@if $(BIN)/clinicops deploy --version 2.1.0-broken-health --health-deadline 15; then \
	  echo "the broken release was not stopped by the health gate"; exit 1; fi
	$(BIN)/clinicops maintenance
	$(BIN)/clinicops rotate-logs
	@echo "clinicops: the kill switch: the AI feature off on every clinic, then the fleet's flags"
	$(BIN)/clinicops flag set ai_enabled=false
	$(BIN)/clinicops flag get
	$(BIN)/clinicops diagnose kinshasa
	$(BIN)/clinicops health
	$(BIN)/clinicops runs -n 12

demo-down: venv
	$(BIN)/clinicops lab down

test: lint sanity unit integration molecule

lint: collection
	$(BIN)/ruff check src tests lab plugins bench roles
	$(BIN)/ruff format --check src tests lab bench roles
	@# A copy installed earlier in the user's collections would shadow the tree being linted.
	rm -rf $(HOME)/.ansible/collections/ansible_collections/clinicops
	cd $(COLLECTION) && $(BIN)/ansible-lint --profile production --strict roles playbooks
	@# AWX/AAP as code and the EE definitions, from the checkout (--offline: installs no copy of the collection).
	$(BIN)/ansible-lint --offline --profile production --strict awx execution-environment.yml meta/execution-environment.yml

sanity: collection
	$(BIN)/python tests/sanity/run_sanity.py

unit: venv
	$(BIN)/pytest tests/unit

integration: collection
	$(BIN)/pytest tests/integration

# Roles with molecule scenarios (roles/<role>/molecule/*), one after the other: each starts its own clinic container.
MOLECULE_ROLES := clinic_host backup restore deploy rollback log_rotation feature_flags

molecule: collection
	$(BIN)/python -m clinicops lab image
	for role in $(MOLECULE_ROLES); do (cd roles/$$role && $(BIN)/molecule test --all) || exit 1; done

# On demand only, never part of `make test`: backup/restore against pg_dump/pg_restore on lab `bench`
# (see bench/README.md; BENCH_ARGS="--runs 5 --experiments --down" passes options).
bench: collection
	$(BIN)/python bench/backup_restore.py $(BENCH_ARGS)

# On demand only, never part of `make test`: rollback against a swap by hand, deploy to 1 clinic against 10, on lab
# `benchdeploy` (10 clinics; see bench/README.md; BENCH_ARGS="--runs 5 --down" passes options).
bench-deploy: collection
	$(BIN)/python bench/deploy_rollback.py $(BENCH_ARGS)

# On demand only, never part of `make test`: `clinicops health` against ansible-playbook on the same playbook, on lab
# `benchdeploy` (10 clinics; see bench/README.md; BENCH_ARGS="--runs 5 --decompose --down" passes options).
bench-cli: collection
	$(BIN)/python bench/cli_overhead.py $(BENCH_ARGS)

# On demand only, never part of `make test`: the log archive step against find -delete + tar czf, in a temporary
# directory on this machine (see bench/README.md; BENCH_ARGS="--size 200M --runs 1" for a quick run).
bench-logs: collection
	$(BIN)/python bench/log_archive.py $(BENCH_ARGS)

# On demand only, never part of `make test`: the kill switch (`clinicops flag set`) on 10 clinics against the same by
# hand with one ad-hoc ansible command, on lab `benchdeploy` (see bench/README.md; BENCH_ARGS="--runs 5 --down").
bench-flags: collection
	$(BIN)/python bench/kill_switch.py $(BENCH_ARGS)

clean:
	rm -rf build .pytest_cache .ruff_cache
