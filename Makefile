# The two commands a user needs: `make lab` and `make test`. Everything else is a
# step of those. Run as root on Debian 12 (the tests start systemd containers).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
# Caches shared by every clone on this machine (images, wheels).
export AILAB_CACHE ?= /var/cache/ailab

SCENARIOS ?= default nfs gpu instances

.PHONY: help venv host-tools images artifacts lint test test-unit test-molecule test-integration test-vm bench lab lab-down clean

help:
	@echo "make lab       set up everything and converge the local lab (containers)"
	@echo "make lab-down  remove the lab hosts"
	@echo "make test      lint + unit + molecule ($(SCENARIOS)) + integration + vm"
	@echo "make test-unit | lint | test-molecule | test-integration"
	@echo "make test-vm   VM tier (QEMU): kernel NFS, reboot, rebuild (15-18 min)"
	@echo "make bench     inspection and lab converge benchmarks"

$(BIN)/.installed: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

venv: $(BIN)/.installed

host-tools:
	tests/lab/ensure-host-tools.sh

images: host-tools
	tests/images/build.sh 12 13
	tests/images/prune.sh 12 13

# Local stand-ins for what cannot be downloaded here, built once per machine under
# $(AILAB_CACHE): the tiny real GGUF, the llama-cpp-python wheelhouse (minutes the
# first time), the packaged textgen and Ollama stand-ins.
artifacts: venv
	$(BIN)/python tests/fixtures/make_tiny_gguf.py >/dev/null
	PYTHON=$(abspath $(BIN)/python) tests/fixtures/build_wheelhouse.sh >/dev/null
	$(BIN)/python tests/standins/package_standins.py $(AILAB_CACHE)/standins >/dev/null

lint: venv
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-molecule: venv images artifacts
	for s in $(SCENARIOS); do $(BIN)/molecule test -s $$s || exit 1; done

test-integration: venv images artifacts
	@if ls tests/integration/test_*.py >/dev/null 2>&1; then $(BIN)/pytest -q tests/integration; \
	else echo "no integration tests yet"; fi

test: lint test-unit test-molecule test-integration test-vm

# The VM tier: two QEMU guests (software emulation) with the real kernel NFS server
# and client, a reboot with the server down, a rebuild from the base image (15-18 min).
test-vm: venv artifacts
	tests/vm/ensure-host-tools.sh
	$(BIN)/molecule test -s vm

lab: venv images artifacts
	$(BIN)/ansible-playbook playbooks/lab_up.yml
	$(BIN)/ansible-playbook site.yml
	$(BIN)/ansible-playbook playbooks/verify.yml
	$(BIN)/ansible-playbook playbooks/lab_complete.yml

# Inspection speed against gguf's reader, then lab converge ratios (rebuilds the lab).
bench: venv images artifacts
	$(BIN)/python benchmarks/bench_inspect.py
	$(BIN)/python benchmarks/bench_lab.py

lab-down: venv
	$(BIN)/ansible-playbook playbooks/lab_down.yml

clean: lab-down
	rm -rf .cache .plan reports
