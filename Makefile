# shadowsnap.ec2 — developer entry points. `make demo` and `make test` need only Python 3.11+ and the network
# access to PyPI (and Debian packages for shellcheck); everything else is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUILD := build
COLLECTIONS := $(BUILD)/collections
MATRIX := $(BUILD)/matrix
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/shadowsnap/ec2
export ANSIBLE_COLLECTIONS_PATH := $(abspath $(COLLECTIONS))
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv browser demo test checks sanity lint docs-lint unit integration bench clean test-lowest test-matrix

$(BIN)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../.. $@

venv: $(BIN)/.installed $(COLLECTION_LINK)

# Debian's chromium, in which the integration tests load the HTML reports (headless); installed only when missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; }
	@$(CHROMIUM) --version

clean:
	rm -rf $(BUILD) tests/output .pytest_cache

SITE_PACKAGES = $(shell $(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
SANITY_TREE ?= $(BUILD)/sanity

sanity: venv
	$(BIN)/python .ci/install_get_pip_offline.py >/dev/null
	.ci/collection_tree.sh $(abspath $(SANITY_TREE)) $(SITE_PACKAGES)
	cd $(SANITY_TREE)/ansible_collections/shadowsnap/ec2 && \
	  ansible-test sanity --venv --requirements --python 3.11 --color no $(SANITY_ARGS)

lint: venv
	ansible-lint

docs-lint: venv
	tree=$$(mktemp -d) && trap 'rm -rf "$$tree"' EXIT && \
	  .ci/collection_tree.sh "$$tree" $(SITE_PACKAGES) --copy-dependencies && \
	  cd "$$tree/ansible_collections/shadowsnap/ec2" && \
	  ANSIBLE_COLLECTIONS_PATH="$$tree" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=False antsibull-docs lint-collection-docs --plugin-docs .

# pytest-xdist: every worker is a process of its own with a lab of its own (state directory, ports), so a test runs in
# a worker as it runs alone. The unit tests are CPU-bound; the integration tests mostly wait on the lab's emulated
# latencies and timers, so they run with more workers than cores, a file's tests on one worker (--dist loadfile: its
# module fixtures are made once).
UNIT_WORKERS ?= 4
INTEGRATION_WORKERS ?= 4

unit: venv
	pytest -n $(UNIT_WORKERS) tests/unit

integration: venv browser
	pytest -n $(INTEGRATION_WORKERS) --dist loadfile tests/integration

LOWEST_CORE := $(shell sed -n 's/^requires_ansible: *">=\([0-9.]*\)".*/\1/p' meta/runtime.yml)
# While the lowest supported ansible-core is the development virtualenv's, its run would repeat the one above: skipped.
DEV_CORE := $(shell sed -n 's/^ansible-core==//p' requirements-dev.txt)
LOWEST_RUN := $(if $(filter $(DEV_CORE),$(LOWEST_CORE)),,test-lowest)

# Two lanes side by side: the CPU-bound checks one after the other (the lowest's sanity and unit tests among them),
# beside the integration tests, which mostly wait. --output-sync prints each step's output whole when it ends; a
# failing step fails make test (the other lane runs to its end first).
test: browser venv $(if $(LOWEST_RUN),$(MATRIX)/lowest/bin/.installed)
	$(MAKE) --no-print-directory -j2 --output-sync=target checks integration

checks: venv
	$(MAKE) sanity
	$(MAKE) unit
	$(MAKE) lint
	$(MAKE) docs-lint
	$(if $(LOWEST_RUN),$(MAKE) $(LOWEST_RUN),@echo "ansible-core $(LOWEST_CORE), the lowest supported, is the development virtualenv's: tested above")

# The supported range, tested at both ends, each in its own virtualenv under build/matrix/ (the dev requirements without
# their ansible pins, then these): "lowest" is the lowest ansible-core that meta/runtime.yml's requires_ansible allows,
# with the lowest amazon.aws and ansible.windows galaxy.yml accepts that PyPI carries (the collections of the Ansible
# package LOWEST_ANSIBLE, installed without its own ansible-core pin); "newest" is the newest ansible-core on PyPI that
# this Python can install (pip skips releases whose Requires-Python excludes it) with the newest Ansible package for it.
# Each has a sanity tree of its own, so that a matrix run does not rebuild the development one.
LOWEST_ANSIBLE := 12.3.0
NEWEST_CORE = $(shell $(BIN)/python -m pip index versions ansible-core 2>/dev/null | sed -n 's/^ansible-core (\(.*\))$$/\1/p')

$(MATRIX)/%/bin/.installed: requirements-dev.txt meta/runtime.yml
	rm -rf $(MATRIX)/$*
	$(PYTHON) -m venv $(MATRIX)/$*
	$(MATRIX)/$*/bin/python -m pip install --quiet --upgrade pip
	grep -Ev '^(ansible|ansible-core)==' requirements-dev.txt > $(MATRIX)/$*.requirements.txt
	if [ "$*" = lowest ]; then \
	  $(MATRIX)/$*/bin/python -m pip install --quiet -r $(MATRIX)/$*.requirements.txt ansible-core==$(LOWEST_CORE) && \
	  $(MATRIX)/$*/bin/python -m pip install --quiet --no-deps ansible==$(LOWEST_ANSIBLE); \
	else \
	  $(MATRIX)/$*/bin/python -m pip install --quiet -r $(MATRIX)/$*.requirements.txt ansible-core==$(NEWEST_CORE) ansible; \
	fi
	$(MATRIX)/$*/bin/ansible --version | head -1
	touch $@

LOWEST := VENV=$(MATRIX)/lowest SANITY_TREE=$(MATRIX)/lowest.sanity

test-lowest: $(MATRIX)/lowest/bin/.installed
	$(MAKE) $(LOWEST) sanity
	$(MAKE) $(LOWEST) unit

test-matrix: browser $(MATRIX)/lowest/bin/.installed $(MATRIX)/newest/bin/.installed
	$(MAKE) $(LOWEST) sanity unit integration
	$(MAKE) VENV=$(MATRIX)/newest SANITY_TREE=$(MATRIX)/newest.sanity sanity unit integration

demo: venv
	cd tests && ../$(BIN)/python -m lab.demo

bench: venv
	cd tests && ../$(BIN)/python -m benchmarks.bench_snapshot_sets --instances 10 --volumes 4
	cd tests && ../$(BIN)/python -m benchmarks.bench_backup
	cd tests && ../$(BIN)/python -m benchmarks.bench_retention --sets 400 --loop-sets 40
	cd tests && ../$(BIN)/python -m benchmarks.bench_dr_copy --sets 50 --loop-sets 3
	cd tests && ../$(BIN)/python -m benchmarks.bench_restore --instances 20
