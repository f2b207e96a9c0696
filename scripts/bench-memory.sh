#!/usr/bin/env bash
# Memory per route and per cached name, side by side, in one run.
#
# Routes: boma and Traefik read the same dynamic file with 20, then 1,000 routers (one Host rule
# and one single-server service each, all to one nginx backend); RSS after a warm-up request to
# every host, and wrk's requests/s on the last route (boma also runs its DNS, as on the box).
# Cached names: boma and dnsmasq forward 10,000 distinct names to the same upstream (a third
# dnsmasq, authority of bench.test) with a 10,000-entry cache; RSS before and after, per name.
# The upstream's answer is a public-range address (nothing is ever sent there): boma's rebind
# protection drops private ones, as dnsmasq's stop-dns-rebind does. With heaptrack installed, the
# live heap of each boma case is measured too. Prints a Markdown section on stdout. Bounded: every load is a fixed count or a few seconds;
# every process made here is stopped on exit. Loopback only.
# With a second binary (the same code built for x86_64 musl), its figures are added as
# "boma (musl)": musl is the C library of the image, whose allocator gives freed memory back on
# its own, where glibc's keeps much of a large parse's peak.
# usage: scripts/bench-memory.sh target/release/boma [target/x86_64-unknown-linux-musl/release/boma]
set -euo pipefail
cd "$(dirname "$0")/.."
BOMA=$1
MUSL=${2:-}
BASE=${BASE_PORT:-18180}
BACKEND=$((BASE + 1)); TRAEFIK=$((BASE + 2)); WEB=$((BASE + 3)); DNS=$((BASE + 4))
UPSTREAM=$((BASE + 5)); DNSMASQ_PORT=$((BASE + 6))
NAMES=${MEMORY_NAMES:-10000}
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
work=$(mktemp -d)
# Traefik's and boma's configurations (traefik_toml, boma_toml), as the proxy benchmarks write them.
# shellcheck source=scripts/bench-configs.sh
. scripts/bench-configs.sh
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

cat > "$work/backend.conf" <<EOF
worker_processes 1; daemon off; pid $work/backend.pid; error_log $work/backend.err;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$BACKEND; location / { return 200 "ok\n"; } } }
EOF
nginx -c "$work/backend.conf" & pids+=($!)

routes_file() { # count
  for i in $(seq 1 "$1"); do
    printf '[http.routers.r%d]\nrule = "Host(`app%d.bench.local`)"\nservice = "s%d"\n' "$i" "$i" "$i"
    printf '[http.services.s%d.loadBalancer]\n[[http.services.s%d.loadBalancer.servers]]\nurl = "http://127.0.0.1:%d"\n' "$i" "$i" "$BACKEND"
  done
}

declare -A RSS RPS
measure_routes() { # name pid port count
  local name=$1 pid=$2 port=$3 n=$4
  wait_http "http://127.0.0.1:$port/" "app$n.bench.local" 200
  for i in $(seq 1 "$n"); do curl -fs -o /dev/null -H "Host: app$i.bench.local" "http://127.0.0.1:$port/"; done
  sleep 1
  RSS[$name/$n]=$(rss_kib "$pid")
  RPS[$name/$n]=$(wrk -t2 -c32 -d4s -H "Host: app$n.bench.local" "http://127.0.0.1:$port/" | awk '/^Requests\/sec:/{printf "%.0f", $2}')
  echo "bench-memory: $name, $n routes: RSS ${RSS[$name/$n]} KiB, ${RPS[$name/$n]} req/s" >&2
}

for n in 20 1000; do
  routes_file "$n" > "$work/dynamic-$n.toml"
  boma_toml "$WEB" "$work/dynamic-$n.toml" "[dns]
listen = [\"127.0.0.1:$DNS\"]
zone = \"bench.local\"
address = \"127.0.0.1\"
upstreams = []" > "$work/boma-$n.toml"
  "$BOMA" run --config "$work/boma-$n.toml" > "$work/boma-$n.log" 2>&1 & b=$!; pids+=($b)
  measure_routes boma "$b" "$WEB" "$n"
  stop "$b"
  if [ -n "$MUSL" ]; then
    "$MUSL" run --config "$work/boma-$n.toml" > "$work/musl-$n.log" 2>&1 & b=$!; pids+=($b)
    measure_routes "boma (musl)" "$b" "$WEB" "$n"
    stop "$b"
  fi
  traefik_toml "$TRAEFIK" "$work/dynamic-$n.toml" > "$work/traefik-$n.toml"
  traefik --configFile="$work/traefik-$n.toml" > "$work/traefik-$n.log" 2>&1 & t=$!; pids+=($t)
  measure_routes traefik "$t" "$TRAEFIK" "$n"
  stop "$t"
done

# --- cached names -------------------------------------------------------------------------
for i in $(seq 1 "$NAMES"); do echo "name$i.bench.test A"; done > "$work/names.txt"
common=(--keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 --pid-file=)
"$DNSMASQ" "${common[@]}" --port="$UPSTREAM" --address=/bench.test/93.184.216.34 --local-ttl=3600 & pids+=($!)
declare -A NAME_IDLE NAME_FULL
measure_names() { # name pid port
  local name=$1 pid=$2 port=$3
  for _ in $(seq 1 100); do kdig @127.0.0.1 -p "$port" +short +timeout=1 warm.bench.test >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 1
  NAME_IDLE[$name]=$(rss_kib "$pid")
  dnsperf -s 127.0.0.1 -p "$port" -d "$work/names.txt" -n 1 -c 4 -q 100 > "$work/$name.dnsperf"
  sleep 1
  NAME_FULL[$name]=$(rss_kib "$pid")
  echo "bench-memory: $name, $NAMES names cached: RSS ${NAME_IDLE[$name]} -> ${NAME_FULL[$name]} KiB" >&2
}
"$DNSMASQ" "${common[@]}" --port="$DNSMASQ_PORT" --server="127.0.0.1#$UPSTREAM" \
  --cache-size=10000 & d=$!; pids+=($d)
measure_names dnsmasq "$d" "$DNSMASQ_PORT"
stop "$d"
cat > "$work/boma-dns.toml" <<EOF
[dns]
listen = ["127.0.0.1:$DNS"]
zone = "village.lan"
address = "127.0.0.1"
upstreams = ["127.0.0.1:$UPSTREAM"]
cache_size = 10000
[log]
level = "warn"
EOF
"$BOMA" run --config "$work/boma-dns.toml" > "$work/boma-dns.log" 2>&1 & b=$!; pids+=($b)
measure_names boma "$b" "$DNS"
stop "$b"
if [ -n "$MUSL" ]; then
  "$MUSL" run --config "$work/boma-dns.toml" > "$work/musl-dns.log" 2>&1 & b=$!; pids+=($b)
  measure_names "boma (musl)" "$b" "$DNS"
  stop "$b"
fi
bomas=(boma); [ -z "$MUSL" ] || bomas+=("boma (musl)")

# --- live heap (heaptrack): what boma itself holds, without the allocator's retained pages ---
# The process is killed (SIGKILL) once loaded, so what is still allocated is what it holds.
declare -A LIVE
live_heap() { # key config port host-or-empty
  local out=$work/heap-$1
  heaptrack -o "$out" "$BOMA" run --config "$2" > "$work/heap-$1.log" 2>&1 &
  local hp=$!
  for _ in $(seq 1 200); do grep -q '^ready' "$work/heap-$1.log" 2>/dev/null && break; sleep 0.1; done
  if [ -n "$4" ]; then
    curl -fs -o /dev/null -H "Host: $4" "http://127.0.0.1:$3/" || true
  else
    dnsperf -s 127.0.0.1 -p "$3" -d "$work/names.txt" -n 1 -c 4 -q 100 > /dev/null
  fi
  sleep 1
  pkill -9 -f "^$BOMA run --config $2" || true
  wait "$hp" 2>/dev/null || true
  LIVE[$1]=$(heaptrack_print "$out".zst 2>/dev/null | awk '/^total memory leaked:/{print $4}')
  echo "bench-memory: live heap $1: ${LIVE[$1]}" >&2
}
if command -v heaptrack >/dev/null; then
  # (the upstream dnsmasq of the names above is still running)
  for n in 20 1000; do live_heap "routes-$n" "$work/boma-$n.toml" "$WEB" "app$n.bench.local"; done
  live_heap names "$work/boma-dns.toml" "$DNS" ""
fi

# --- report ---------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
grow_kib() { echo $(( $2 - $1 )); }
per_item() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }'; }
echo "## Memory per route and per cached name"
echo
echo "Command: \`scripts/bench-memory.sh\` (\`SECTIONS=memory make bench\`). Routes: the same file"
echo "of 20, then 1,000 routers (one \`Host\` rule and one single-server service each) read by boma"
echo "(with its DNS on) and Traefik; RSS after one request to every host, then \`wrk -t2 -c32 -d4s\`"
echo "on the last route. Names: $NAMES distinct forwarded names through a 10,000-entry cache,"
echo "boma and dnsmasq forwarding to the same upstream; RSS before and after."
echo
echo "| | RSS, 20 routes (KiB) | RSS, 1,000 routes (KiB) | growth (KiB) | per route (bytes) | req/s 1,000 / 20 routes |"
echo "|---|---:|---:|---:|---:|---:|"
for n in "${bomas[@]}" traefik; do
  a=${RSS[$n/20]}; b=${RSS[$n/1000]}
  echo "| $n | $a | $b | $(grow_kib "$a" "$b") | $(per_item "$a" "$b" 980) | $(ratio "${RPS[$n/1000]}" "${RPS[$n/20]}") |"
done
echo
echo "| | RSS idle (KiB) | RSS, $NAMES names cached (KiB) | per name (bytes) |"
echo "|---|---:|---:|---:|"
for n in dnsmasq "${bomas[@]}"; do
  echo "| $n | ${NAME_IDLE[$n]} | ${NAME_FULL[$n]} | $(per_item "${NAME_IDLE[$n]}" "${NAME_FULL[$n]}" "$NAMES") |"
done
echo
if [ -n "${LIVE[names]:-}" ]; then
  echo
  echo "Live heap (heaptrack: what is still allocated when boma is killed after the load, i.e."
  echo "without the pages the allocator keeps after freeing): 20 routes ${LIVE[routes-20]}, 1,000"
  echo "routes ${LIVE[routes-1000]}, $NAMES cached names ${LIVE[names]} (idle baseline included)."
  echo "The rest of the glibc growth is the parse of the dynamic file (a peak of ~8 MiB for 1,000"
  echo "routers), freed but left fragmented between live objects, which \`malloc_trim\` after each"
  echo "change cannot return; musl's allocator, the image's, returns most of it."
fi
echo
echo "Budgets (issue 10): 1,000 routes add at most 2,048 KiB over 20 routes; requests/s with"
echo "1,000 routes at least 0.9 of 20; at most 256 bytes per cached name."
