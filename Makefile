# Drawbridge — `make demo` and `make test` work on a fresh machine: they install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# .cache/node/bin holds Node 24 (scripts/node.sh) when the machine's node is older; every target uses it.
export PATH := $(CURDIR)/.cache/node/bin:$(CURDIR)/node_modules/.bin:/usr/lib/postgresql/15/bin:$(PATH)

APT_PACKAGES := postgresql postgresql-client redis-server redis-tools pgbouncer nutcracker openssl lua5.4
STAMP := node_modules/.drawbridge-deps

.PHONY: help node deps build crds lint test test-unit test-integration demo clean

# Every target with a `## description` (here and in mk/*.mk) is listed; a new target documents itself.
help:  ## this list
	@awk -F':.*## ' '/^[a-z][a-z0-9-]*:.*## / { printf "make %-22s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# System packages are installed only when a binary is missing, so a warm machine skips apt entirely.
node:
	@bash scripts/node.sh

deps: node $(STAMP)  ## install what the build and tests need (apt packages, npm ci)
$(STAMP): package.json package-lock.json | node
	@missing=""; \
	for b in /usr/lib/postgresql/15/bin/initdb psql pgbench redis-server redis-cli redis-benchmark pgbouncer nutcracker openssl lua5.4; do \
	  command -v $$b >/dev/null 2>&1 || missing="$$missing $${b##*/}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: missing$$missing; installing Debian packages: $(APT_PACKAGES)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; } || { \
	    echo "deps: apt-get failed (above). Install them yourself, as root with Debian's mirrors reachable:" >&2; \
	    echo "  apt-get update && apt-get install -y $(APT_PACKAGES)" >&2; exit 1; }; \
	  for s in postgresql redis-server pgbouncer nutcracker; do service $$s stop >/dev/null 2>&1 || true; done; \
	fi
	@echo "deps: npm ci (the project's packages, from package-lock.json)"
	@npm ci --no-audit --no-fund || { echo "deps: npm ci failed (above): is the npm registry reachable? (npm config get registry)" >&2; exit 1; }
	@touch $@

build: deps  ## compile to dist/ (src, bench, scripts, test helpers)
	tsc -p tsconfig.build.json

crds: build  ## regenerate crds/ and the Helm chart's CRD templates from the zod schemas
	node dist/src/cli/drawbridge.js crds --out crds --helm-out charts/drawbridge/templates/crds

lint: deps  ## typecheck, eslint, prettier --check
	tsc -p tsconfig.json --noEmit
	eslint src test bench scripts
	prettier --check "src/**/*.ts" "test/**/*.ts" "bench/**/*.ts" "scripts/**/*.ts"

test-unit: deps  ## fast tests, no servers
	vitest run --project unit

test-integration: build  ## real servers, real clients
	vitest run --project integration

test: lint test-unit test-integration  ## everything CI runs (lint, unit, integration)
demo: build  ## real PostgreSQL + Redis, an agent, psql and redis-cli through it
	bash scripts/demo.sh

clean:  ## remove dist/ and node_modules/
	rm -rf dist node_modules

-include mk/*.mk
