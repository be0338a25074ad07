# Rookery: `make run` serves the studio on http://127.0.0.1:3000 with data in ./data;
# `make test` runs every test, Playwright included. Both install what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := run
export CARGO_TERM_COLOR ?= never

# Where `make run` keeps its data and may write backups; `make reset` clears both.
DATA ?= ./data
BACKUPS ?= /tmp/rookery-backups

.PHONY: run test tools tools-e2e build release lint house alerts unit fuzz e2e bench bench-scale bench-garage bench-report load soak soak-snapshot test-s3-cluster reset clean

tools:
	@bash scripts/install-tools.sh

tools-e2e:
	@bash scripts/install-tools.sh --with-browser

build: tools
	cargo leptos build --bin-features ssr,failpoints

# What a user deploys: the release server and the optimised, compressed studio
# in dist/ (`dist/rookery-server --data-dir ...` serves dist/site; see the README).
release: tools
	bash scripts/install-tools.sh --release
	PATH="$(CURDIR)/.tools/node_modules/.bin:$$PATH" cargo leptos build --release
	cargo build --release -p server --bin rookery-backup --bin rookery-smuggler
	rm -rf dist && mkdir -p dist
	cp target/release/rookery-server target/release/rookery-backup target/release/rookery-smuggler dist/
	cp -r target/site dist/site
	@echo "dist/: rookery-server, rookery-backup, rookery-smuggler and site/ ($$(du -sh dist | cut -f1))"

# A development server: data in $(DATA), backups allowed under $(BACKUPS).
run: build
	./target/debug/rookery-server --data-dir $(DATA) --bind 127.0.0.1:3000 --backup-root $(BACKUPS) --site-root target/site

# Unit, router, integration and fault tests (real servers on free ports), then the studio in Chromium.
test: tools-e2e lint house alerts unit build fuzz e2e

# Formatting and lints: the tree as committed, no warning.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --features server/failpoints -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps -p server -p rookery-types

# The house: the engine builds and runs without the web (no axum, no Leptos
# in its tree), and no source file imports a file that imports it.
house:
	cargo run -q -p server --no-default-features --example embedded
	@if cargo tree -p server --no-default-features -e normal --prefix none | grep -E '^(leptos|axum)'; then \
		echo "house: the engine alone depends on the crates above"; exit 1; fi
	python3 scripts/check-imports.py types/src server/src app/src

# The alert rules that ship in docs/alerts.yml, checked and run on synthetic series.
alerts:
	promtool check rules docs/alerts.yml
	cd docs && promtool test rules alerts.test.yml

unit:
	cargo test --workspace --features server/failpoints

# Hostile input: schemathesis against /openapi.json of a real server (bounded examples).
fuzz:
	bash scripts/fuzz-api.sh

e2e:
	cd end2end && npx playwright test

# The backup/restore benchmark (release build). N=1000000 by default.
bench: tools
	bash scripts/install-tools.sh --python
	mkdir -p docs/bench/runs
	cargo run --release -p server --bin rookery-bench -- --documents $${N:-1000000} \
		--json docs/bench/runs/$$(date -u +%Y%m%dT%H%M%SZ)-$${N:-1000000}.json

# How each operation's time grows from FROM to N documents, both sizes in one run.
bench-scale:
	mkdir -p docs/bench/runs
	cargo run --release -p server --bin rookery-bench -- --documents $${N:-5000000} --scale-from $${FROM:-1000000} --no-s3 \
		--json docs/bench/runs/$$(date -u +%Y%m%dT%H%M%SZ)-$${N:-5000000}-scale.json

# The object storage rows against a local Garage node instead of moto (builds Garage once).
bench-garage:
	cargo build --release -p server --bin rookery-bench
	N=$${N:-1000000} bash scripts/bench-garage.sh

# The last three runs' rows as one chart (docs/bench/chart.svg, shown in the README).
bench-report:
	python3 scripts/bench-chart.py docs/bench/runs docs/bench/chart.svg 3

# Mixed load with and without backups against a running server (make run), then a verified restore.
load:
	cargo run --release -p server --bin rookery-load -- --url $${URL:-http://127.0.0.1:3000} --backup-dest $(abspath $(BACKUPS))/load --seconds $${SECONDS_PER_PHASE:-10}

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

# A second walk-through: forget make run's data, its master key and its backups.
reset:
	rm -rf $(DATA) $(BACKUPS) $(dir $(abspath $(DATA)))rookery-master.key

clean:
	cargo clean
	rm -rf end2end/node_modules
