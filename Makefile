# boma's entry points. `make test` sets up everything the tests need on a Debian-like machine
# (packages, pip tools) and runs every test; CI runs exactly that (.ci/run).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test deps lint bench release aarch64 clean image image-lock image-deps qemu yocto-lint bundle

run:
	$(CARGO) run --release

## Install what the tests and benchmarks use (idempotent; needs root or sudo for apt).
deps:
	scripts/deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The fuzz targets (cargo-fuzz, run with nightly) must keep compiling against the library.
	$(CARGO) check --manifest-path fuzz/Cargo.toml --bins

# --workspace: the image builder's tests (image/tests/image_*.rs, qemu_*.rs) need the aarch64
# binary, hence `aarch64` first; their measurements end up in target/image-test/figures.txt.
test: deps lint aarch64 yocto-lint
	$(CARGO) test --workspace --all-targets -- --test-threads=2
	@cat target/image-test/figures.txt 2>/dev/null || true

release:
	$(CARGO) build --release

## The static aarch64 (Raspberry Pi) binary at target/aarch64-unknown-linux-musl/release/boma.
aarch64:
	scripts/cross.sh

## Side-by-side benchmarks (boma, nginx, Traefik); writes docs/benchmarks.md.
bench: deps release
	scripts/bench.sh

## Bootable SD-card image for one board (board/<name>/): target/images/boma-$(BOARD).img, .img.xz,
## .sha256. BOARD = qemu-virt (default), rpi3, rpi4, rpi-zero-2w. See docs/image.md.
BOARD ?= qemu-virt
## VERSION: stamped into the image or bundle (`boma version`; updates refuse older ones).
## KEY: the update signing key (made on first use; keep your own off the gateway: docs/updates.md).
VERSION ?= 0.1.0
KEY ?= target/keys/boma-update.key
HTTP_PORT ?= 8080
DNS_PORT ?= 5353

image-deps:
	scripts/image-deps.sh

image: image-deps aarch64
	$(CARGO) build --release -p boma-image
	target/release/boma-image build --board $(BOARD) --version $(VERSION) --key $(KEY)

## Signed update bundle: target/images/boma-$(BOARD)-$(VERSION).bundle, for POST /api/update or
## `boma update FILE`. BREAK=1: a bundle whose boma exits at start (to watch a rollback).
BREAK ?=
bundle: image-deps aarch64
	$(CARGO) build --release -p boma-image
	target/release/boma-image bundle --board $(BOARD) --version $(VERSION) --key $(KEY) $(if $(BREAK),--break)

## Record the sha256 of newly pinned packages in image/packages.lock (after bumping a pin).
image-lock: image-deps aarch64
	$(CARGO) build --release -p boma-image
	target/release/boma-image build --board $(BOARD) --record-lock

## Boot the image headless in QEMU (qemu-virt; rpi3 on raspi3b): serial console on the terminal,
## guest HTTP on 127.0.0.1:$(HTTP_PORT), guest DNS on 127.0.0.1:$(DNS_PORT). Ctrl-A X quits.
## LAN_TAP=tap0 (qemu-virt): the gateway's LAN (eth1) on that existing tap device.
LAN_TAP ?=
qemu: image
	target/release/boma-image qemu --board $(BOARD) --http-port $(HTTP_PORT) --dns-port $(DNS_PORT) $(if $(LAN_TAP),--lan-tap $(LAN_TAP))

## oelint-adv over the Yocto layer (installed from PyPI by scripts/image-deps.sh).
yocto-lint: image-deps
	scripts/yocto-lint.sh

clean:
	$(CARGO) clean
