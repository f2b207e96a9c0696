#!/usr/bin/env bash
# Instructions a proxied request takes, counted by valgrind's callgrind: deterministic to 0.1 %
# from run to run, where the shared host's timings swing by 10 % and more, so that a change to
# the request path can be measured before and after. The backend and configurations of the proxy
# section of scripts/bench.sh; each proxy runs under callgrind with one worker, counting only
# while `wrk -t1 -c16 -d5s` loads it (after a 3 s warm-up, not counted). Prints one line per
# proxy: requests served while counted and user-space instructions a request (the kernel's work
# is not counted; it is the same for every proxy here, see docs/benchmarks.md).
#
# Usage: scripts/bench-proxy-instructions.sh [BOMA...]  (default target/release/boma; a
# stripped binary counts the same, a build with symbols also gives a profile to read with
# callgrind_annotate: KEEP=dir keeps the callgrind output). nginx is measured twice: as the
# proxy bench sets it (Host and X-Forwarded-For) and setting the same forwarded fields as boma.
# Loopback only; every process is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- target/release/boma
for b in "$@"; do [ -x "$b" ] || { echo "bench-proxy-instructions: $b missing; run make release" >&2; exit 1; }; done
for t in valgrind callgrind_control nginx wrk curl; do
  command -v "$t" >/dev/null || { echo "bench-proxy-instructions: $t missing; run make deps" >&2; exit 1; }
done
BASE=${BASE_PORT:-18380}
BACKEND_PORT=$((BASE + 1)); PROXY=$((BASE + 2))
# One proxy at a time, on the same port.
NGINX_PORT=$PROXY; BOMA_PORT=$PROXY; TRAEFIK_PORT=$PROXY; NGINX_WORKERS=1
KEEP=${KEEP:-}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# shellcheck source=scripts/bench-configs.sh
. scripts/bench-configs.sh
bench_configs
printf '[limits]\nworkers = 1\n' >> "$work/boma.toml"
nginx -c "$work/backend/nginx.conf" -g 'daemon off;' > /dev/null 2>&1 & pids+=($!)

count() { # label command...
  local label=$1; shift
  rm -f "$work"/cg.out*
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.out" "$@" > "$work/run.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  # Under valgrind a proxy takes seconds to start.
  wait_http "http://127.0.0.1:$PROXY/" bench.local 600
  wrk -t1 -c16 -d3s -H 'Host: bench.local' "http://127.0.0.1:$PROXY/" > /dev/null
  callgrind_control -i on "$pid" > /dev/null 2>&1
  wrk -t1 -c16 -d5s -H 'Host: bench.local' "http://127.0.0.1:$PROXY/" > "$work/wrk.out"
  callgrind_control -i off "$pid" > /dev/null 2>&1
  callgrind_control -d "$pid" > /dev/null 2>&1
  sleep 1
  local n ir
  n=$(awk '/requests in/{print $1}' "$work/wrk.out")
  ir=$(cat "$work"/cg.out* | awk '/^summary:/{s += $2} /^totals:/{t += $2} END {print (s > 0 ? s : t)}')
  echo "$label: $n requests counted, $((ir / n)) instructions a request"
  [ -z "$KEEP" ] || { mkdir -p "$KEEP"; cp "$work"/cg.out* "$KEEP/"; }
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

solo='daemon off; master_process off;'
count "nginx (Host, X-Forwarded-For)" nginx -c "$work/proxy/nginx.conf" -g "$solo"
count "nginx (boma's forwarded fields)" nginx -c "$work/proxy/nginx-fields.conf" -g "$solo"
for b in "$@"; do count "boma ($b)" "$b" run --config "$work/boma.toml"; done
