# Every target bootstraps what it needs: the .venv from requirements.lock (every package pinned with its hashes),
# Debian chromium for the browser tests, Debian pgbouncer for the pooler tests.
SHELL := /bin/bash
comma := ,
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock
EXTRAS := server,postgres,fastapi,flask,requests,httpx,metrics,mcp,dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench fuzz demo lint typecheck chromium keyring pgbouncer wrk clean lock lock-upgrade node-interop

# The application's environment comes from the lock file alone: --require-hashes refuses anything unpinned or
# altered, --no-deps anything the lock does not list; then tokenward itself, editable, built offline.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip check
	@touch $(STAMP)

## lock: re-resolve requirements.lock from pyproject.toml's ranges, keeping every existing pin that still fits
## (a new dependency is added without upgrading the others); lock-upgrade: newest versions that fit
UPGRADE ?=
lock: $(STAMP)
	$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
	  | $(BIN)/uv pip compile pyproject.toml - --extra $(subst $(comma), --extra ,$(EXTRAS)) --universal \
	    --python-version 3.11 --generate-hashes --index-url https://pypi.org/simple $(UPGRADE) -q --custom-compile-command "make lock" -o $(LOCK)
	@echo "$(LOCK) refreshed: review the diff, then make test"

lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# A real Secret Service (gnome-keyring under dbus-run-session) for the client's keyring-store tests.
keyring:
	@command -v gnome-keyring-daemon >/dev/null 2>&1 && command -v dbus-run-session >/dev/null 2>&1 || { \
	  echo "installing gnome-keyring and dbus for the keyring tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends gnome-keyring dbus-daemon >/dev/null; }

# A real pgbouncer (transaction pooling) in front of the test PostgreSQL for tests/e2e/test_pgbouncer.py.
pgbouncer:
	@command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || { \
	  echo "installing Debian pgbouncer for the pgbouncer tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends pgbouncer >/dev/null; }

# The independent npm relying parties of tests/interop/node, exactly as package-lock.json pins them (npm ci
# checks every package's integrity hash; no install scripts run).
NODE_INTEROP := tests/interop/node
$(NODE_INTEROP)/node_modules/.package-lock.json: $(NODE_INTEROP)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "node and npm are required for the interop tests"; exit 1; }
	npm ci --prefix $(NODE_INTEROP) --no-audit --no-fund --ignore-scripts --loglevel=error

node-interop: $(NODE_INTEROP)/node_modules/.package-lock.json

# node-oidc-provider (npm), the independent OpenID provider of tests/interop/test_node_oidc_provider.py, exactly
# as tests/interop/node-provider/package-lock.json pins it (npm ci, no install scripts).
NODE_PROVIDER := tests/interop/node-provider
$(NODE_PROVIDER)/node_modules/.package-lock.json: $(NODE_PROVIDER)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "node and npm are required for the interop tests"; exit 1; }
	npm ci --prefix $(NODE_PROVIDER) --no-audit --no-fund --ignore-scripts --loglevel=error

.PHONY: node-provider
node-provider: $(NODE_PROVIDER)/node_modules/.package-lock.json

wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing Debian wrk for the load benchmarks"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk >/dev/null; }

## bench: guard validation µs (vs raw crypto, PyJWT, joserfc) and protected-API req/s with and without the guard
bench: $(STAMP) wrk
	PYTHONPATH=. $(BIN)/python -m bench.guard_bench
	PYTHONPATH=. $(BIN)/python -m bench.api_bench
	PYTHONPATH=. $(BIN)/python -m bench.token_bench

## soak: 16 concurrent refreshes of one token and 16 redemptions of one code against serve --workers 4, 200 trials each on SQLite and PostgreSQL; exactly one success every time
.PHONY: soak
soak: $(STAMP)
	PYTHONPATH=. $(BIN)/python -m bench.soak --trials 200 --workers 4 --backend both

## demo: the seed story in two minutes — server (30 s tokens), profile API, a client renewing by itself
demo: $(STAMP) chromium
	$(BIN)/python scripts/demo.py

## mcp-demo: a Tokenward server (./tokenward.db) and examples/mcp_server.py at http://127.0.0.1:8002/mcp trusting it
MCP_PORT ?= 8002
.PHONY: mcp-demo
mcp-demo: $(STAMP)
	@echo "Register an MCP client with this resource as its audience (dynamic registration comes later), e.g.:"
	@echo "  $(BIN)/tokenward clients add my-agent --grant-type client_credentials --scope profile:read --audience http://$(HOST):$(MCP_PORT)/mcp"
	@$(BIN)/tokenward serve --host $(HOST) --port $(PORT) & server=$$!; trap 'kill $$server' EXIT; \
	  for i in $$(seq 150); do $(BIN)/python -c 'import sys, httpx2; sys.exit(httpx2.get(sys.argv[1], timeout=1).status_code != 200)' \
	    http://$(HOST):$(PORT)/.well-known/oauth-authorization-server 2>/dev/null && break; sleep 0.2; done; \
	  $(BIN)/python examples/mcp_server.py --issuer http://$(HOST):$(PORT) --host $(HOST) --port $(MCP_PORT)

## fuzz: schemathesis against a real server, 10,000 cases per operation, one process per operation and one per core at a time (FUZZ_EXAMPLES, FUZZ_JOBS to change)
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py

## run: serve the authorization server at http://127.0.0.1:8000 on ./tokenward.db (schema migrated on start)
run: $(STAMP)
	$(BIN)/tokenward serve --host $(HOST) --port $(PORT)

## test: lint, type-check and run every test suite (end-to-end, browser, interop)
test: $(STAMP) chromium keyring pgbouncer node-interop node-provider lint typecheck
	$(BIN)/pytest --durations=15

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts examples

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
