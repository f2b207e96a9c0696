#!/usr/bin/env bash
# Side-by-side proxy benchmark on loopback: the backend directly, nginx, Traefik and boma, the
# same backend and the same wrk load for each, in one run. Writes docs/benchmarks.md.
# Bounded: each load run lasts DURATION seconds; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
BOMA=${BOMA:-target/release/boma}
OUT=${OUT:-docs/benchmarks.md}
BASE=${BASE_PORT:-18080}
BACKEND_PORT=$((BASE + 1)); NGINX_PORT=$((BASE + 2)); TRAEFIK_PORT=$((BASE + 3)); BOMA_PORT=$((BASE + 4))

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

[ -x "$BOMA" ] || { echo "bench: $BOMA missing; run make release" >&2; exit 1; }
for t in nginx traefik wrk curl; do command -v "$t" >/dev/null || { echo "bench: $t missing; run make deps" >&2; exit 1; }; done

# Resident set of a process and its children, in KiB.
rss_kib() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    total=$((total + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

wait_http() { # url host
  for _ in $(seq 1 100); do
    if curl -fs -o /dev/null -H "Host: $2" "$1"; then return 0; fi
    sleep 0.1
  done
  echo "bench: $1 (Host $2) never answered" >&2; exit 1
}

# --- the backend: nginx answering a fixed 13-byte body -------------------------------------
mkdir -p "$work/backend" "$work/proxy"
cat > "$work/backend/nginx.conf" <<EOF
worker_processes 1;
pid $work/backend/nginx.pid;
error_log $work/backend/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/backend;
  server {
    listen 127.0.0.1:$BACKEND_PORT reuseport;
    keepalive_requests 1000000;
    location / { return 200 "hello, world\n"; }
  }
}
EOF
nginx -c "$work/backend/nginx.conf" -g 'daemon off;' & pids+=($!)
wait_http "http://127.0.0.1:$BACKEND_PORT/" bench.local

# --- nginx as the proxy ---------------------------------------------------------------------
cat > "$work/proxy/nginx.conf" <<EOF
worker_processes auto;
pid $work/proxy/nginx.pid;
error_log $work/proxy/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/proxy;
  proxy_temp_path $work/proxy;
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    server_name bench.local;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF

# --- the dynamic file shared by Traefik and boma ---------------------------------------------
cat > "$work/dynamic.toml" <<EOF
[http.routers.bench]
rule = "Host(\`bench.local\`)"
service = "backend"

[http.services.backend.loadBalancer]
[[http.services.backend.loadBalancer.servers]]
url = "http://127.0.0.1:$BACKEND_PORT"
EOF
cat > "$work/traefik.toml" <<EOF
[entryPoints.web]
address = "127.0.0.1:$TRAEFIK_PORT"
[providers.file]
filename = "$work/dynamic.toml"
[log]
level = "ERROR"
[global]
sendAnonymousUsage = false
checkNewVersion = false
EOF
cat > "$work/boma.toml" <<EOF
[entryPoints.web]
address = "127.0.0.1:$BOMA_PORT"
[providers.file]
filename = "$work/dynamic.toml"
[log]
level = "warn"
EOF

declare -A RPS P99 RSS_IDLE RSS_LOAD

# Parse wrk's output: requests/s and p99 in ms.
run_wrk() { # name url
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Host: bench.local" "$2")
  echo "$out" > "$work/$1.wrk"
  RPS[$1]=$(echo "$out" | awk '/^Requests\/sec:/{printf "%.0f", $2}')
  P99[$1]=$(echo "$out" | awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}')
  local errors
  errors=$(echo "$out" | awk '/Non-2xx|Socket errors/{print}')
  [ -z "$errors" ] || echo "bench: $1: $errors" >&2
}

measure() { # name pid url
  local name=$1 pid=$2 url=$3
  wait_http "$url" bench.local
  sleep 1
  RSS_IDLE[$name]=$(rss_kib "$pid")
  run_wrk "$name" "$url"
  RSS_LOAD[$name]=$(rss_kib "$pid")
  echo "bench: $name ${RPS[$name]} req/s, p99 ${P99[$name]} ms, RSS idle ${RSS_IDLE[$name]} KiB, after load ${RSS_LOAD[$name]} KiB" >&2
}

run_wrk backend "http://127.0.0.1:$BACKEND_PORT/"
echo "bench: backend direct ${RPS[backend]} req/s, p99 ${P99[backend]} ms" >&2

nginx -c "$work/proxy/nginx.conf" -g 'daemon off;' & ngx=$!; pids+=($ngx)
measure nginx "$ngx" "http://127.0.0.1:$NGINX_PORT/"
kill "$ngx"; wait "$ngx" 2>/dev/null || true

traefik --configFile="$work/traefik.toml" > "$work/traefik.log" 2>&1 & tfk=$!; pids+=($tfk)
measure traefik "$tfk" "http://127.0.0.1:$TRAEFIK_PORT/"
kill "$tfk"; wait "$tfk" 2>/dev/null || true

"$BOMA" run --config "$work/boma.toml" > "$work/boma.log" 2>&1 & bpid=$!; pids+=($bpid)
measure boma "$bpid" "http://127.0.0.1:$BOMA_PORT/"
kill "$bpid"; wait "$bpid" 2>/dev/null || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }

cpu=$(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//')
{
  echo "# Benchmarks"
  echo
  echo "Made by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu)."
  echo "Every figure below comes from one run; re-run \`make bench\` to refresh it."
  echo
  echo "## Reverse proxy"
  echo
  echo "Command: \`wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -H 'Host: bench.local'\` against each"
  echo "proxy, all in front of the same backend (nginx returning a 13-byte body on loopback), one"
  echo "after another, on the same machine as the load generator. RSS is the resident set (process"
  echo "and children) before the load and right after it."
  echo
  echo "| | requests/s | p99 latency (ms) | RSS idle (KiB) | RSS after load (KiB) |"
  echo "|---|---:|---:|---:|---:|"
  echo "| backend direct | ${RPS[backend]} | ${P99[backend]} | | |"
  for n in nginx traefik boma; do
    echo "| $n | ${RPS[$n]} | ${P99[$n]} | ${RSS_IDLE[$n]} | ${RSS_LOAD[$n]} |"
  done
  echo
  echo "Ratios (budgets from DESIGN.md §6):"
  echo
  echo "| ratio | value | budget |"
  echo "|---|---:|---|"
  echo "| boma / nginx requests/s | $(ratio "${RPS[boma]}" "${RPS[nginx]}") | ≥ 1 |"
  echo "| boma / Traefik requests/s | $(ratio "${RPS[boma]}" "${RPS[traefik]}") | ≥ 3 |"
  echo "| boma / nginx p99 | $(ratio "${P99[boma]}" "${P99[nginx]}") | ≤ 1 |"
  echo "| boma / Traefik RSS after load | $(ratio "${RSS_LOAD[boma]}" "${RSS_LOAD[traefik]}") | ≤ 0.1 |"
  echo
  echo "Versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), Traefik $(traefik version 2>/dev/null | awk '/^Version/{print $2}'), boma $("$BOMA" version | awk '{print $2}'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')."
} > "$OUT"
echo "bench: wrote $OUT" >&2
