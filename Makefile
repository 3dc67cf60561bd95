# Kefu: the two commands a fresh machine needs are `make run` and `make test`.
# Each installs what is missing first (scripts/bootstrap.sh), and skips what is there.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# cargo-leptos puts node_modules/.bin (tailwindcss, wasm-opt) first on PATH by itself.

.PHONY: run build test check unit e2e fmt clean bench

## make run: install what is missing, build the release, serve on http://localhost:8848
run: build
	@mkdir -p data
	LEPTOS_SITE_ROOT=target/site ./target/release/kefu serve

# --split: the console is a wasm file of its own, so the widget's visitors never download it
# (app/build.rs). A build without it works too, as one bigger wasm file.
build:
	@./scripts/bootstrap.sh
	cargo leptos build --release --split

## make test: install what is missing and run every check
test:
	@./scripts/bootstrap.sh --e2e
	$(MAKE) check
	$(MAKE) unit
	cargo leptos build --release --split
	$(MAKE) e2e

check:
	cargo fmt --all --check
	cargo clippy --workspace --exclude frontend --all-targets -- -D warnings
	cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

unit:
	cargo test --workspace --exclude frontend

e2e:
	cd end2end && npx playwright test

## make bench: the benchmark suite against the release server and a bare relay (a few minutes
## on 2 cores); prints `name: value` figures and appends a row to docs/BENCHMARKS.md
bench: build
	cargo run --release -p bench -- suite

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf end2end/test-results end2end/.run
