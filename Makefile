# Lookout developer entry points. `make demo` runs the product, `make test` the suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CHARTJS_VERSION := 4.4.1
SOCKETIO_VERSION := 4.7.5

.PHONY: install services test lint demo bench vendor wheel clean

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	test -d $(VENV) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,bench]'
	touch $@

# Debian's chromium for the browser tests (Playwright drives it; never `playwright install`).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# Debian's Prometheus for its promtool: the shipped alert rules are unit-tested with it
# (tests/monitoring). Its service is not started.
/usr/bin/promtool:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null

install: $(VENV)/.installed /usr/bin/chromium /usr/bin/promtool

services:
	@bash .ci/services.sh

# Layering contracts (setup.cfg [importlinter]) first: they take a second.
lint: install
	$(VENV)/bin/lint-imports --no-cache

test: install services lint
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=10 -n 2 --dist loadfile

demo: install services
	$(PY) demo/run.py

bench: install services
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/query.py
	$(PY) benchmarks/live.py
	$(PY) benchmarks/sockets.py
	$(PY) benchmarks/pair.py

wheel: install
	$(PIP) wheel --no-deps --wheel-dir dist .

# Refresh the bundled browser builds (committed under static/vendor/) from npm; after a
# version change, update the hashes in dashboard/web/layout.py (the tests check them).
vendor:
	rm -rf /tmp/lookout-vendor && mkdir -p /tmp/lookout-vendor
	cd /tmp/lookout-vendor && npm install --silent --no-audit --no-fund \
	  chart.js@$(CHARTJS_VERSION) socket.io-client@$(SOCKETIO_VERSION) >/dev/null
	cp /tmp/lookout-vendor/node_modules/chart.js/dist/chart.umd.js static/vendor/
	cp /tmp/lookout-vendor/node_modules/chart.js/LICENSE.md static/vendor/chart.js.LICENSE.md
	cp /tmp/lookout-vendor/node_modules/socket.io-client/dist/socket.io.min.js static/vendor/
	cp /tmp/lookout-vendor/node_modules/socket.io-client/LICENSE static/vendor/socket.io-client.LICENSE
	for f in static/vendor/*.js; do echo "$$f sha384-$$(openssl dgst -sha384 -binary $$f | base64)"; done

clean:
	rm -rf $(VENV) dist build test-artifacts lookout-data
