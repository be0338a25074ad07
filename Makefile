# Rookery: `make run` serves the studio on http://127.0.0.1:3000 with data in ./data;
# `make test` runs every test, Playwright included. Both install what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := run
export CARGO_TERM_COLOR ?= never

.PHONY: run test tools tools-e2e build release lint unit fuzz e2e bench load soak soak-snapshot test-s3-cluster clean

tools:
	@bash scripts/install-tools.sh

tools-e2e:
	@bash scripts/install-tools.sh --with-browser

build: tools
	cargo leptos build --bin-features ssr,failpoints

# What a user deploys: the release server and the optimised, compressed studio
# in dist/ (run it as `dist/rookery-server --data-dir ...` from dist/; see the README).
release: tools
	bash scripts/install-tools.sh --release
	PATH="$(CURDIR)/.tools/node_modules/.bin:$$PATH" cargo leptos build --release
	cargo build --release -p server --bin rookery-backup --bin rookery-smuggler
	rm -rf dist && mkdir -p dist
	cp target/release/rookery-server target/release/rookery-backup target/release/rookery-smuggler dist/
	cp -r target/site dist/site
	@echo "dist/: rookery-server, rookery-backup, rookery-smuggler and site/ ($$(du -sh dist | cut -f1))"

# A development server: data in ./data, backups allowed under /tmp/rookery-backups.
run: build
	LEPTOS_SITE_ROOT=target/site ./target/debug/rookery-server --data-dir ./data --bind 127.0.0.1:3000 --backup-root /tmp/rookery-backups

# Unit, router, integration and fault tests (real servers on free ports), then the studio in Chromium.
test: tools-e2e lint unit build fuzz e2e

# Formatting and lints: the tree as committed, no warning.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --features server/failpoints -- -D warnings

unit:
	cargo test --workspace --features server/failpoints

# Hostile input: schemathesis against /openapi.json of a real server (bounded examples).
fuzz:
	bash scripts/fuzz-api.sh

e2e:
	cd end2end && npx playwright test

# The backup/restore benchmark (release build). N=1000000 by default.
bench: tools
	cargo run --release -p server --bin rookery-bench -- --documents $${N:-1000000}

# Mixed load with and without backups against a running server (make run), then a verified restore.
load:
	cargo run --release -p server --bin rookery-load -- --url http://127.0.0.1:3000 --backup-dest $$(pwd)/backups/load --seconds $${SECONDS_PER_PHASE:-10}

# kill -9 at random moments of backups and restores under load, many rounds.
soak:
	ROOKERY_SOAK_ROUNDS=$${ROUNDS:-50} cargo test --release -p server --features failpoints --test integration kill_9_at_random_moments_under_load -- --nocapture

# Snapshot round trips under a concurrent writer, many rounds (each restore must hold exactly the writes up to its etag).
soak-snapshot:
	ROOKERY_SNAPSHOT_ROUNDS=$${ROUNDS:-50} cargo test --release -p server --features failpoints --test integration a_snapshot_under_concurrent_writers -- --nocapture

# Object storage on a three-node Garage cluster: a backup under write load with
# one node stopped mid-backup, then a verified restore (builds Garage once).
test-s3-cluster:
	cargo build -p server --features failpoints --bin rookery-server --bin rookery-backup
	bash scripts/s3-cluster.sh

clean:
	cargo clean
	rm -rf end2end/node_modules
