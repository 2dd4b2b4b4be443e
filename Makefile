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

SCENARIOS ?= default nfs gpu instances gateway
# Each step of `make test` is timed (tests/lib/timed.sh); the summary is printed at the end.
export AILAB_TEST_TIMES ?= $(abspath .cache/test-times.tsv)
TIMED := tests/lib/timed.sh
LLAMA_SERVER_TAG = $(shell sed -n 's/^llamacpp_server_version: *"\{0,1\}\([A-Za-z0-9._-]*\)"\{0,1\}.*/\1/p' roles/llamacpp_server/defaults/main.yml)
LLAMA_SERVER_ARCHIVE = $(AILAB_CACHE)/llama-server/llama-$(LLAMA_SERVER_TAG)-bin-ubuntu-x64.tar.gz
GATEWAY_LITELLM = $(shell sed -n 's/^gateway_litellm_version: *"\{0,1\}\([A-Za-z0-9._-]*\)"\{0,1\}.*/\1/p' roles/gateway/defaults/main.yml)
LLAMA_SERVER_SOURCE = $(AILAB_CACHE)/llama-server/llama.cpp-$(LLAMA_SERVER_TAG).tar.gz

.PHONY: bench-stage test-times-start help venv host-tools vm-host-tools images artifacts vm-image prebuild lint test test-unit test-molecule test-integration test-vm test-tiers test-containers test-vm-beside bench lab lab-down clean

help:
	@echo "make lab       set up everything and converge the local lab (containers)"
	@echo "make lab-down  remove the lab hosts"
	@echo "make test      lint + unit + molecule ($(SCENARIOS)) + integration + vm"
	@echo "make test-unit | lint | test-molecule | test-integration"
	@echo "make test-vm   VM tier (QEMU): kernel NFS from a fresh OS, a boot with the server down"
	@echo "make bench     inspection, planning, lab converge, llama-server, gateway, store and staging (VM) benchmarks"

$(BIN)/.installed: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(TIMED) "artifact: venv" - -- $(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

venv: $(BIN)/.installed

host-tools:
	tests/lab/ensure-host-tools.sh

images: host-tools
	$(TIMED) "artifact: lab images" "tests/images/build.sh --check 12 13" -- tests/images/build.sh 12 13
	tests/images/prune.sh 12 13

# Local stand-ins for what cannot be downloaded here, built once per machine under
# $(AILAB_CACHE): the tiny real GGUF, llama.cpp's llama-server packed like upstream's
# release archive (minutes the first time), the packaged textgen and Ollama stand-ins.
artifacts: venv
	$(TIMED) "artifact: tiny GGUF" "test -f $(AILAB_CACHE)/models/tiny-llama-F32.gguf -a -f $(AILAB_CACHE)/models/tiny-bert-F32.gguf" -- \
	  sh -c '$(BIN)/python tests/fixtures/make_tiny_gguf.py && $(BIN)/python tests/fixtures/make_tiny_bert_gguf.py' >/dev/null
	$(TIMED) "artifact: llama-server" "test -f $(LLAMA_SERVER_ARCHIVE).sha256 -a -f $(LLAMA_SERVER_SOURCE).sha256" -- \
	  env PYTHON=$(abspath $(BIN)/python) tests/fixtures/build_llama_server.sh >/dev/null
	$(TIMED) "artifact: gateway wheels" "test -f $(AILAB_CACHE)/gateway/litellm-$(GATEWAY_LITELLM)-wheels.tar.gz.sha256" -- \
	  env PYTHON=$(abspath $(BIN)/python) tests/fixtures/build_gateway_wheelhouse.sh >/dev/null
	$(BIN)/python tests/standins/package_standins.py $(AILAB_CACHE)/standins >/dev/null
	$(BIN)/python tests/fixtures/make_lab_hub.py >/dev/null
	$(TIMED) "artifact: transformers reference" - -- tests/fixtures/make_transformers_reference.sh >/dev/null

# The VM tier's QEMU and its base disk (debootstrap), shared by every clone.
vm-host-tools:
	tests/vm/ensure-host-tools.sh

vm-image: vm-host-tools
	$(TIMED) "artifact: VM base disk" "tests/vm/build-image.sh --check" -- tests/vm/build-image.sh >/dev/null

# Every artifact `make test` needs, the long builds side by side: two debootstraps
# (lab images, VM base disk) wait on the network and the disk while llama-server
# compiles. Host tools are installed first, one apt at a time.
prebuild: venv host-tools vm-host-tools
	$(MAKE) --no-print-directory -j3 images artifacts vm-image

lint: venv
	$(TIMED) "tier: lint" - -- bash -c '$(BIN)/yamllint --strict . && $(BIN)/ansible-lint --profile production && $(BIN)/ruff check . && $(BIN)/ruff format --check .'

test-unit: venv
	$(TIMED) "tier: unit" - -- $(BIN)/pytest -q -n auto --dist loadfile tests/unit

test-molecule: venv images artifacts
	for s in $(SCENARIOS); do $(TIMED) "tier: molecule $$s" - -- $(BIN)/molecule test -s $$s || exit 1; done

test-integration: venv images artifacts
	$(TIMED) "tier: integration" - -- $(BIN)/pytest -q tests/integration

# A new summary per `make test`: the steps before it are forgotten.
test-times-start:
	@mkdir -p $(dir $(AILAB_TEST_TIMES)); : >$(AILAB_TEST_TIMES)

test: test-times-start venv prebuild lint test-unit test-tiers
	@$(BIN)/python tests/lib/test_times.py $(AILAB_TEST_TIMES) benchmarks/results/test-times.md

# After lint and the unit tier (which use every core themselves), the tiers run in
# two lanes side by side: the emulated guests and Ansible on the containers each leave
# cores idle while they wait on round trips. Lane one: Molecule's default and
# instances scenarios, then the integration tier. Lane two: the VM tier, then the
# scenarios in BESIDE_SCENARIOS; its output goes to $(BESIDE_LOG), shown when it fails.
# The lanes touch different containers, networks and Molecule scenario directories.
BESIDE_SCENARIOS ?= gpu nfs gateway
BESIDE_LOG := $(abspath .cache/test-beside.log)
test-tiers:
	$(MAKE) --no-print-directory -j2 test-containers test-vm-beside

test-containers:
	$(MAKE) --no-print-directory -j1 test-molecule test-integration SCENARIOS="$(filter-out $(BESIDE_SCENARIOS),$(SCENARIOS))"

test-vm-beside:
	@mkdir -p $(dir $(BESIDE_LOG)); echo "VM tier and Molecule $(filter $(BESIDE_SCENARIOS),$(SCENARIOS)): started beside the other tiers, output in $(BESIDE_LOG)"
	@if $(MAKE) --no-print-directory -j1 test-vm test-molecule SCENARIOS="$(filter $(BESIDE_SCENARIOS),$(SCENARIOS))" >$(BESIDE_LOG) 2>&1; then \
	  echo "Second lane: passed ($(BESIDE_LOG))"; \
	else \
	  tail -n 200 $(BESIDE_LOG); echo "Second lane: FAILED, full output in $(BESIDE_LOG)"; exit 1; \
	fi

# The VM tier: two QEMU guests (software emulation) with the real kernel NFS server
# and client on a fresh OS, a boot with the server down (about 15 min).
test-vm: venv artifacts vm-image
	$(TIMED) "tier: vm" - -- $(BIN)/molecule test -s vm

lab: venv images artifacts
	$(BIN)/ansible-playbook playbooks/lab_up.yml
	$(BIN)/ansible-playbook site.yml
	$(BIN)/ansible-playbook playbooks/verify.yml
	$(BIN)/ansible-playbook playbooks/lab_complete.yml

# Inspection speed against gguf's reader, planning time for 5 hosts x 20 instances, then lab converge ratios (rebuilds the lab); llama-server against llama-cpp-python; the gateway's added TTFT and its completions/s. Then the model store's second run over complete Hugging Face repositories (per-repository cost, Hub requests). Last, bench-stage: the model load time from the store over NFS against from a staged copy.
bench: venv images artifacts
	$(BIN)/python benchmarks/bench_inspect.py
	$(BIN)/python benchmarks/bench_plan.py
	$(BIN)/python benchmarks/bench_lab.py
	$(BIN)/python benchmarks/bench_llama_server.py
	$(BIN)/python benchmarks/bench_gateway.py
	$(BIN)/python benchmarks/bench_store.py
	$(MAKE) --no-print-directory bench-stage

# The lab model's load time from the store over kernel NFS against from its staged copy
# (stage: local) needs the VM tier's two guests: molecule/vm/verify.yml times both loads in
# one run and writes benchmarks/results/stage-load.{json,md} (about 20 minutes: the whole
# VM scenario).
bench-stage: venv artifacts vm-image
	$(BIN)/molecule test -s vm

lab-down: venv
	$(BIN)/ansible-playbook playbooks/lab_down.yml

clean: lab-down
	rm -rf .cache .plan reports
