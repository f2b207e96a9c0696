# boma's entry points. `make test` sets up everything the tests need on a Debian-like machine
# (packages, pip tools) and runs every test; CI runs exactly that (.ci/run).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test deps lint bench release aarch64 clean

run:
	$(CARGO) run --release

## Install what the tests and benchmarks use (idempotent; needs root or sudo for apt).
deps:
	scripts/deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

test: deps lint
	$(CARGO) test --all-targets -- --test-threads=2

release:
	$(CARGO) build --release

## The static aarch64 (Raspberry Pi) binary at target/aarch64-unknown-linux-musl/release/boma.
aarch64:
	scripts/cross.sh

## Side-by-side benchmarks (boma, nginx, Traefik); writes docs/benchmarks.md.
bench: deps release
	scripts/bench.sh

clean:
	$(CARGO) clean
