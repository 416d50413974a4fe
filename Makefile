# Lookout developer entry points. `make demo` runs the product, `make test` the suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CHARTJS_VERSION := 4.4.1
SOCKETIO_VERSION := 4.7.5
VENDOR := vendor
export LOOKOUT_CHARTJS_URL ?= /vendor/chart.umd.js
export LOOKOUT_SOCKETIO_URL ?= /vendor/socket.io.min.js

.PHONY: install services test demo bench clean lint

$(VENV)/.installed: setup.cfg pyproject.toml
	test -d $(VENV) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,bench]'
	touch $@

$(VENDOR)/.installed:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Debian chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi
	mkdir -p $(VENDOR)
	cd $(VENDOR) && npm install --silent --no-audit --no-fund --no-save \
	  chart.js@$(CHARTJS_VERSION) socket.io-client@$(SOCKETIO_VERSION) >/dev/null 2>&1
	cp $(VENDOR)/node_modules/chart.js/dist/chart.umd.js $(VENDOR)/chart.umd.js
	cp $(VENDOR)/node_modules/socket.io-client/dist/socket.io.min.js $(VENDOR)/socket.io.min.js
	touch $@

install: $(VENV)/.installed $(VENDOR)/.installed

services:
	@bash .ci/services.sh

test: install services
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=10

demo: install services
	$(PY) -m dashboard.demo

bench: install services
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/query.py
	$(PY) benchmarks/live.py

clean:
	rm -rf $(VENV) $(VENDOR) test-artifacts lookout-data
