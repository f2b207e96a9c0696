#!/usr/bin/env bash
# CPU time per proxied request, boma against nginx, split into user and system time: the same
# backend (nginx, 13-byte body) and configurations as the proxy section of scripts/bench.sh, a
# 2 s warm-up, then `wrk -t2 -c64 -d$DURATION` while the proxy's utime and stime (every thread,
# every worker process) are read from /proc before and after. Prints one line per proxy:
# requests/s, wrk's p99 latency and microseconds of CPU per request. Loopback only; every
# process is stopped on exit.
#
# PIN=1: the proxy alone on CPU 1 with one worker (nginx `worker_processes 1`, boma
# `[limits] workers = 1`), wrk (one thread) and the backend on CPU 0, so that a proxy's
# requests/s is its own single-core throughput instead of its share of two cores with the load
# generator (much steadier on a shared host). BOMA_B=path: a second boma binary measured in the
# same run, after the first (before/after a change). ROUNDS=n: the measurements n times over.
# METRICS=1: boma once more, with [metrics.prometheus] on (Traefik's default labels plus
# routers), in the same round: the cost of recording every request. TRAEFIK=1: Traefik too, in
# the same round (with PIN=1, GOMAXPROCS=1 on the proxy's core: its one-core throughput).
set -euo pipefail
cd "$(dirname "$0")/.."
BOMA=${BOMA:-target/release/boma}
BOMA_B=${BOMA_B:-}
METRICS=${METRICS:-0}
TRAEFIK=${TRAEFIK:-0}
PIN=${PIN:-0}
ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-8}
BASE=${BASE_PORT:-18180}
BACKEND_PORT=$((BASE + 1)); NGINX_PORT=$((BASE + 2)); BOMA_PORT=$((BASE + 3)); TRAEFIK_PORT=$((BASE + 5))
[ -x "$BOMA" ] || { echo "bench-proxy-cpu: $BOMA missing; run make release" >&2; exit 1; }
for t in nginx wrk curl $([ "$TRAEFIK" = 1 ] && echo traefik); do command -v "$t" >/dev/null || { echo "bench-proxy-cpu: $t missing; run make deps" >&2; exit 1; }; done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
NGINX_WORKERS=$([ "$PIN" = 1 ] && echo 1 || echo auto)
# shellcheck source=scripts/bench-configs.sh
. scripts/bench-configs.sh
bench_configs
# utime and stime (clock ticks) summed over the threads of the given processes.
ticks() { local u=0 s=0 t; for p in "$@"; do for t in /proc/"$p"/task/*/stat; do
  read -r a b < <(awk '{print $14, $15}' "$t"); u=$((u + a)); s=$((s + b)); done; done; echo "$u $s"; }
procs() { echo "$1" $(pgrep -P "$1" || true); }
hz=$(getconf CLK_TCK)
one() { # name url pid
  wait_http "$2" bench.local
  $load wrk -t$wrk_threads -c64 -d2s -H 'Host: bench.local' "$2" > /dev/null
  read -r u0 s0 < <(ticks $(procs "$3"))
  out=$($load wrk -t$wrk_threads -c64 -d"${DURATION}s" --latency -H 'Host: bench.local' "$2")
  read -r u1 s1 < <(ticks $(procs "$3"))
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  rps=$(echo "$out" | awk '/^Requests\/sec/{printf "%.0f", $2}')
  p99=$(echo "$out" | awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}')
  awk -v n="$1" -v r="$rps" -v q="$reqs" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" -v p="$p99" \
    'BEGIN { printf "%s: %s requests/s, p99 %s ms, CPU per request %.1f us (user %.1f, system %.1f)\n", n, r, p, (u + s) * 1e6 / hz / q, u * 1e6 / hz / q, s * 1e6 / hz / q }'
}
if [ "$PIN" = 1 ]; then
  load="taskset -c 0"; proxy_cpu="taskset -c 1"; wrk_threads=1
  printf '[limits]\nworkers = 1\n' >> "$work/boma.toml"
else
  load=""; proxy_cpu=""; wrk_threads=2
fi
$load nginx -c "$work/backend/nginx.conf" -g 'daemon off;' & pids+=($!)
{ cat "$work/boma.toml"
  printf '[entryPoints.traefik]\naddress = "127.0.0.1:%s"\n' $((BASE + 4))
  printf '[metrics.prometheus]\naddRoutersLabels = true\n'; } > "$work/boma-metrics.toml"
boma_one() { # name binary [config]
  $proxy_cpu "$2" run --config "${3:-$work/boma.toml}" > "$work/boma.log" 2>&1 & b=$!; pids+=($b)
  one "$1" "http://127.0.0.1:$BOMA_PORT/" "$b"
  kill "$b"; wait "$b" 2>/dev/null || true
}
traefik_one() {
  if [ "$PIN" = 1 ]; then procs_env="GOMAXPROCS=1"; else procs_env="GOMAXPROCS=$(nproc)"; fi
  $proxy_cpu env "$procs_env" traefik --configFile="$work/traefik.toml" > "$work/traefik.log" 2>&1 & t=$!; pids+=($t)
  one traefik "http://127.0.0.1:$TRAEFIK_PORT/" "$t"
  kill "$t"; wait "$t" 2>/dev/null || true
}
for _ in $(seq 1 "$ROUNDS"); do
  $proxy_cpu nginx -c "$work/proxy/nginx.conf" -g 'daemon off;' & ngx=$!; pids+=($ngx)
  one nginx "http://127.0.0.1:$NGINX_PORT/" "$ngx"
  kill "$ngx"; wait "$ngx" 2>/dev/null || true
  boma_one boma "$BOMA"
  [ -z "$BOMA_B" ] || boma_one "boma ($BOMA_B)" "$BOMA_B"
  [ "$METRICS" != 1 ] || boma_one "boma, metrics on" "$BOMA" "$work/boma-metrics.toml"
  [ "$TRAEFIK" != 1 ] || traefik_one
done
