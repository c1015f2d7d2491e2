# Drawbridge — `make demo` and `make test` work on a fresh machine: they install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# .cache/node/bin holds Node 24 (scripts/node.sh) when the machine's node is older; every target uses it.
export PATH := $(CURDIR)/.cache/node/bin:$(CURDIR)/node_modules/.bin:/usr/lib/postgresql/15/bin:$(PATH)

APT_PACKAGES := postgresql postgresql-client redis-server redis-tools pgbouncer nutcracker openssl lua5.4
STAMP := node_modules/.drawbridge-deps

.PHONY: help node deps build crds lint test test-unit test-integration demo clean

help:
	@echo "make demo              real PostgreSQL + Redis, an agent, psql and redis-cli through it"
	@echo "make test              everything CI runs (lint, unit, integration)"
	@echo "make test-unit         fast tests, no servers"
	@echo "make test-integration  real servers, real clients"
	@echo "make crds              regenerate crds/ from the zod schemas"

# System packages are installed only when a binary is missing, so a warm machine skips apt entirely.
node:
	@bash scripts/node.sh

deps: node $(STAMP)
$(STAMP): package.json package-lock.json | node
	@missing=""; \
	for b in /usr/lib/postgresql/15/bin/initdb psql pgbench redis-server redis-cli redis-benchmark pgbouncer nutcracker openssl lua5.4; do \
	  command -v $$b >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  for s in postgresql redis-server pgbouncer nutcracker; do service $$s stop >/dev/null 2>&1 || true; done; \
	fi
	npm ci --no-audit --no-fund
	@touch $@

build: deps
	tsc -p tsconfig.build.json

crds: build
	node dist/src/cli/drawbridge.js crds --out crds

lint: deps
	tsc -p tsconfig.json --noEmit
	eslint src test bench scripts
	prettier --check "src/**/*.ts" "test/**/*.ts" "bench/**/*.ts" "scripts/**/*.ts"

test-unit: deps
	vitest run --project unit

test-integration: build
	vitest run --project integration

test: lint test-unit test-integration

demo: build
	bash scripts/demo.sh

clean:
	rm -rf dist node_modules

-include mk/*.mk
