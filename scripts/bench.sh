#!/usr/bin/env bash
# Side-by-side benchmarks on loopback. Proxy: the backend directly, nginx, Traefik and boma (the
# release build, and the same code built for size as the Pi binary is), the same backend and the
# same wrk load for each. DNS: dnsmasq and boma with the same upstream and the same dnsperf query
# files (local zone, cached forwarded names). Docker: start-event-to-routable latency, boma and
# Traefik (scripts/bench-docker.py). Size: the static aarch64 binary, its sections and largest
# crates (cargo bloat). DHCP: perfdhcp against dnsmasq and boma in network namespaces
# (scripts/bench-dhcp.sh, needs root). Writes docs/benchmarks.md; SECTIONS="dns" (or any subset
# of "proxy dns docker dhcp memory size") runs those parts and keeps the others as they were.
# Bounded: each load run lasts DURATION (DNS_DURATION) seconds; every process started here is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
BOMA=${BOMA:-target/release/boma}
OUT=${OUT:-docs/benchmarks.md}
BASE=${BASE_PORT:-18080}
BACKEND_PORT=$((BASE + 1)); NGINX_PORT=$((BASE + 2)); TRAEFIK_PORT=$((BASE + 3)); BOMA_PORT=$((BASE + 4)); METRICS_PORT=$((BASE + 5))
BOMA_M_PORT=$((BASE + 6)); BOMA_S_PORT=$((BASE + 7))
SECTIONS=${SECTIONS:-proxy dns docker dhcp memory size}
# The x86 release code built with the Pi binary's size setting (opt-level s), for one more row.
BOMA_SMALL=${BOMA_SMALL:-target/opt-s/release/boma}
DNS_DURATION=${DNS_DURATION:-10}
UPSTREAM_DNS_PORT=$((BASE + 10)); DNSMASQ_PORT=$((BASE + 11)); BOMA_DNS_PORT=$((BASE + 12))
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

[ -x "$BOMA" ] || { echo "bench: $BOMA missing; run make release" >&2; exit 1; }
if want proxy && [ "$BOMA_SMALL" = target/opt-s/release/boma ]; then
  echo "bench: building the opt-level=s x86 binary (target/opt-s)" >&2
  CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_TARGET_DIR=target/opt-s cargo build --release -q
fi
if want proxy; then
  for t in nginx traefik wrk curl; do command -v "$t" >/dev/null || { echo "bench: $t missing; run make deps" >&2; exit 1; }; done
fi
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
if want dns; then
  for t in dnsperf kdig "$DNSMASQ"; do command -v "$t" >/dev/null || { echo "bench: $t missing; run make deps" >&2; exit 1; }; done
fi

# Resident set of a process and its children, in KiB.
rss_kib() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    total=$((total + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

declare -A RPS P99 RSS_IDLE RSS_LOAD IDLE_CONN
ratio() { # n/a unless both are numbers and the second is not 0
  awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "n/a"; else printf "%.2f", a / b }'
}

# ============================================================================================
# Reverse proxy (not indented, to keep its history readable)
if want proxy; then

# --- the backend, nginx as the proxy, and the configurations Traefik and boma share ------------
# shellcheck source=scripts/bench-configs.sh
. scripts/bench-configs.sh
bench_configs
nginx -c "$work/backend/nginx.conf" -g 'daemon off;' & pids+=($!)
wait_http "http://127.0.0.1:$BACKEND_PORT/" bench.local

# Parse wrk's output: requests/s and p99 in ms, added to the proxy's list of rounds.
run_wrk() { # name url
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Host: bench.local" "$2")
  echo "$out" >> "$work/$1.wrk"
  RPS_ALL[$1]+=" $(echo "$out" | awk '/^Requests\/sec:/{printf "%.0f", $2}')"
  P99_ALL[$1]+=" $(echo "$out" | awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}')"
  local errors
  errors=$(echo "$out" | awk '/Non-2xx|Socket errors/{print}')
  [ -z "$errors" ] || echo "bench: $1: $errors" >&2
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }

# Every proxy is started first and waits idle while another is loaded; the rounds then take
# them in turn, so that a drift of the shared host's speed falls on all of them alike.
declare -A PID URL RPS_ALL P99_ALL
start() { # name pid url
  PID[$1]=$2; URL[$1]=$3; pids+=("$2")
  wait_http "$3" bench.local
}
URL[backend]="http://127.0.0.1:$BACKEND_PORT/"
nginx -c "$work/proxy/nginx.conf" -g 'daemon off;' & start nginx $! "http://127.0.0.1:$NGINX_PORT/"
traefik --configFile="$work/traefik.toml" > "$work/traefik.log" 2>&1 &
start traefik $! "http://127.0.0.1:$TRAEFIK_PORT/"
"$BOMA" run --config "$work/boma.toml" > "$work/boma.log" 2>&1 &
start boma $! "http://127.0.0.1:$BOMA_PORT/"
# The same with [metrics.prometheus] on (routers' labels too): the cost of recording requests.
{ sed "s/:$BOMA_PORT\"/:$BOMA_M_PORT\"/" "$work/boma.toml"
  printf '[entryPoints.traefik]\naddress = "127.0.0.1:%s"\n' "$METRICS_PORT"
  printf '[metrics.prometheus]\naddRoutersLabels = true\n'; } > "$work/boma-metrics.toml"
"$BOMA" run --config "$work/boma-metrics.toml" > "$work/boma-m.log" 2>&1 &
start boma-m $! "http://127.0.0.1:$BOMA_M_PORT/"
sed "s/:$BOMA_PORT\"/:$BOMA_S_PORT\"/" "$work/boma.toml" > "$work/boma-s.toml"
"$BOMA_SMALL" run --config "$work/boma-s.toml" > "$work/boma-s.log" 2>&1 &
start boma-s $! "http://127.0.0.1:$BOMA_S_PORT/"
PROXIES="nginx traefik boma boma-m boma-s"
sleep 1
for n in $PROXIES; do RSS_IDLE[$n]=$(rss_kib "${PID[$n]}"); done
for round in $(seq 1 "$ROUNDS"); do
  for n in backend $PROXIES; do
    run_wrk "$n" "${URL[$n]}"
    [ "$n" = backend ] || RSS_LOAD[$n]=$(rss_kib "${PID[$n]}")
  done
  echo "bench: round $round of $ROUNDS done" >&2
done
for n in backend $PROXIES; do
  # shellcheck disable=SC2086 # the lists are words
  RPS[$n]=$(median ${RPS_ALL[$n]}); P99[$n]=$(median ${P99_ALL[$n]})
done
echo "bench: backend direct ${RPS[backend]} req/s, p99 ${P99[backend]} ms" >&2
# Then 1,000 keep-alive connections held open and idle, on each proxy in turn: the memory each
# costs.
for n in $PROXIES; do
  pid=${PID[$n]}; port=${URL[$n]##*:}; port=${port%%/*}
  IDLE_CONN[$n]=$(scripts/bench-idle-conns.py "$port" "$(echo "$pid" $(pgrep -P "$pid" || true) | tr ' ' ',')" 1000 \
    | awk '{print $(NF-2)}') || { echo "bench: $n: idle connections not measured" >&2; IDLE_CONN[$n]=n/a; }
  echo "bench: $n ${RPS[$n]} req/s (rounds:${RPS_ALL[$n]}), p99 ${P99[$n]} ms, RSS idle ${RSS_IDLE[$n]} KiB, after load ${RSS_LOAD[$n]} KiB, ${IDLE_CONN[$n]} bytes per idle connection" >&2
done
for n in $PROXIES; do kill "${PID[$n]}" 2>/dev/null || true; wait "${PID[$n]}" 2>/dev/null || true; done

# Then each proxy on a core of its own (one worker; Traefik GOMAXPROCS=1) with wrk and the
# backend on another (scripts/bench-proxy-cpu.sh, PIN=1): its own throughput, where the rounds
# above measure its share of two cores with the load generator and the backend.
declare -A PIN_RPS PIN_P99 PIN_CPU PIN_USER
PINNED="nginx traefik boma"
for n in $PINNED; do PIN_RPS[$n]=n/a; PIN_P99[$n]=n/a; PIN_CPU[$n]=n/a; PIN_USER[$n]=n/a; done
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: one CPU only; the one-core-each rounds need two" >&2
elif ! PIN=1 ROUNDS="$ROUNDS" DURATION="$DURATION" TRAEFIK=1 BOMA="$BOMA" BASE_PORT=$((BASE + 100)) \
    scripts/bench-proxy-cpu.sh > "$work/pinned.txt"; then
  echo "bench: the one-core-each rounds failed; their cells say n/a" >&2
else
  for n in $PINNED; do
    # "name: R requests/s, p99 P ms, CPU per request C us (user U, system S)"
    lines=$(awk -v n="$n:" '$1 == n' "$work/pinned.txt")
    [ -n "$lines" ] || { echo "bench: no one-core figures for $n" >&2; continue; }
    # shellcheck disable=SC2046 # the lists are words
    { PIN_RPS[$n]=$(median $(echo "$lines" | awk '{print $2}'))
      PIN_P99[$n]=$(median $(echo "$lines" | awk '{print $5}'))
      PIN_CPU[$n]=$(median $(echo "$lines" | awk '{print $10}'))
      PIN_USER[$n]=$(median $(echo "$lines" | awk '{sub(/,/, "", $13); print $13}')); }
    echo "bench: $n on one core ${PIN_RPS[$n]} req/s (rounds: $(echo "$lines" | awk '{printf " %s", $2}')), p99 ${PIN_P99[$n]} ms, ${PIN_CPU[$n]} us a request" >&2
  done
fi

fi # proxy

# ============================================================================================
# DNS: dnsmasq and boma, one after the other, both forwarding to the same upstream (a third
# dnsmasq, authority for bench.test with a one-hour TTL), loaded by the same dnsperf runs.
declare -A QPS_LOCAL QPS_CACHED DNS_RSS_IDLE DNS_RSS_LOAD

wait_dns() { # port
  for _ in $(seq 1 100); do
    if [ "$(kdig @127.0.0.1 -p "$1" +timeout=1 +retry=0 +short host1.village.lan 2>/dev/null)" = 10.0.0.1 ]; then return 0; fi
    sleep 0.1
  done
  echo "bench: DNS on port $1 never answered" >&2; exit 1
}

run_dnsperf() { # name port file -> queries/s
  local out lost
  out=$(dnsperf -s 127.0.0.1 -p "$2" -d "$3" -l "$DNS_DURATION" -c 4 -q 200)
  echo "$out" > "$work/$1.$(basename "$3").dnsperf"
  lost=$(echo "$out" | awk '/Queries lost:/{print $3}')
  [ "${lost:-0}" = 0 ] || echo "bench: $1 $(basename "$3"): $lost queries lost" >&2
  echo "$out" | awk '/Queries per second:/{printf "%.0f", $4}'
}

measure_dns() { # name pid port
  local name=$1 pid=$2 port=$3
  wait_dns "$port"
  sleep 1
  DNS_RSS_IDLE[$name]=$(rss_kib "$pid")
  # One pass over the forwarded names fills the cache; the measured runs then hit it.
  dnsperf -s 127.0.0.1 -p "$port" -d "$work/dns/forward.txt" -n 1 -c 4 -q 200 > /dev/null
  QPS_LOCAL[$name]=$(run_dnsperf "$name" "$port" "$work/dns/local.txt")
  QPS_CACHED[$name]=$(run_dnsperf "$name" "$port" "$work/dns/forward.txt")
  DNS_RSS_LOAD[$name]=$(rss_kib "$pid")
  echo "bench: $name DNS local ${QPS_LOCAL[$name]} q/s, cached ${QPS_CACHED[$name]} q/s, RSS idle ${DNS_RSS_IDLE[$name]} KiB, after load ${DNS_RSS_LOAD[$name]} KiB" >&2
}

if want dns; then
  mkdir -p "$work/dns"
  for i in $(seq 1 1000); do echo "host$i.village.lan A"; done > "$work/dns/local.txt"
  for i in $(seq 1 1000); do echo "name$i.bench.test A"; done > "$work/dns/forward.txt"
  dnsmasq_common=(--keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 --pid-file=)
  "$DNSMASQ" "${dnsmasq_common[@]}" --port="$UPSTREAM_DNS_PORT" --address=/bench.test/93.184.216.34 \
    --local-ttl=3600 & pids+=($!)

  "$DNSMASQ" "${dnsmasq_common[@]}" --port="$DNSMASQ_PORT" --address=/village.lan/10.0.0.1 \
    --server="127.0.0.1#$UPSTREAM_DNS_PORT" --cache-size=10000 --local-ttl=60 \
    --domain-needed --bogus-priv --stop-dns-rebind & dm=$!; pids+=($dm)
  measure_dns dnsmasq "$dm" "$DNSMASQ_PORT"
  kill "$dm"; wait "$dm" 2>/dev/null || true

  cat > "$work/boma-dns.toml" <<TOML
[dns]
listen = ["127.0.0.1:$BOMA_DNS_PORT"]
zone = "village.lan"
address = "10.0.0.1"
upstreams = ["127.0.0.1:$UPSTREAM_DNS_PORT"]
cache_size = 10000
local_ttl = 60
[log]
level = "warn"
TOML
  "$BOMA" run --config "$work/boma-dns.toml" > "$work/boma-dns.log" 2>&1 & bd=$!; pids+=($bd)
  measure_dns boma "$bd" "$BOMA_DNS_PORT"
  kill "$bd"; wait "$bd" 2>/dev/null || true
fi

# ============================================================================================
# Report: each section run now is written anew; a section not run is kept from the old file.
kept_section() { # heading
  [ -f "$OUT" ] || return 0
  # The first heading that starts with h, up to the next heading (a prefix such as "## Reverse
  # proxy" must not also take "## Reverse proxy profile").
  awk -v h="$1" '!f && index($0, h) == 1 {f = 1; print; next} f && /^## / {exit} f' "$OUT"
}

# A measured section's hand-written part: from the notes marker to the next heading. Kept when
# the section is measured again (the analysis stays; its figures say which run they come from).
NOTES='<!-- Notes below are written by hand and kept when the section is measured again. -->'
kept_notes() { # heading
  [ -f "$OUT" ] || return 0
  awk -v h="$1" -v m="$NOTES" '!f && index($0, h) == 1 {f = 1; next} f && /^## / {exit} f && $0 == m {n = 1} n' "$OUT"
}

dns_section() {
  echo "## DNS"
  echo
  echo "Command: \`dnsperf -c 4 -q 200 -l $DNS_DURATION\` against each server, one after the other,"
  echo "with the same query files: 1,000 names of the local zone (\`hostN.village.lan A\`, dnsmasq's"
  echo "\`address=/village.lan/10.0.0.1\`, boma's wildcard) and 1,000 forwarded names"
  echo "(\`nameN.bench.test A\`), cached by one pass before the measured run. Both forward to the"
  echo "same upstream (dnsmasq as the authority of bench.test, one-hour TTL), cache 10,000 entries and"
  echo "run dnsmasq's safety options (domain-needed, bogus-priv, rebind protection). RSS: resident set"
  echo "before the load and right after it."
  echo
  echo "| | local zone (queries/s) | cached forwarded (queries/s) | RSS idle (KiB) | RSS after load (KiB) |"
  echo "|---|---:|---:|---:|---:|"
  for n in dnsmasq boma; do
    echo "| $n | ${QPS_LOCAL[$n]} | ${QPS_CACHED[$n]} | ${DNS_RSS_IDLE[$n]} | ${DNS_RSS_LOAD[$n]} |"
  done
  echo
  echo "Ratios (budgets from issue 4 and DESIGN.md §6):"
  echo
  echo "| ratio | value | budget |"
  echo "|---|---:|---|"
  echo "| boma / dnsmasq local-zone queries/s | $(ratio "${QPS_LOCAL[boma]}" "${QPS_LOCAL[dnsmasq]}") | ≥ 1 |"
  echo "| boma / dnsmasq cached queries/s | $(ratio "${QPS_CACHED[boma]}" "${QPS_CACHED[dnsmasq]}") | ≥ 1 |"
  echo "| boma / dnsmasq RSS after load | $(ratio "${DNS_RSS_LOAD[boma]}" "${DNS_RSS_LOAD[dnsmasq]}") | ≤ 2 |"
  echo
  echo "Versions: dnsmasq $("$DNSMASQ" --version | awk 'NR==1{print $3}'), dnsperf $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null || echo '?'), boma $("$BOMA" version | awk '{print $2}')."
}

proxy_section() {
  echo "## Reverse proxy"
  echo
  echo "Command: \`wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -H 'Host: bench.local'\` against each"
  echo "proxy, all in front of the same backend (nginx returning a 13-byte body on loopback), on the"
  echo "same machine as the load generator. All the proxies are started first; $ROUNDS rounds then load"
  echo "each in turn (the others idle), and the table gives the median of the rounds, so that a drift"
  echo "of the shared host's speed falls on every proxy alike. RSS is the resident set (process and"
  echo "children) before the load and right after its last round. Then"
  echo "\`scripts/bench-idle-conns.py\` opens 1,000 keep-alive connections to each proxy in turn, one"
  echo "request each, and holds them idle: the growth of the resident set over the connections is the"
  echo "memory an idle connection costs."
  echo
  echo "| | requests/s | p99 latency (ms) | RSS idle (KiB) | RSS after load (KiB) | bytes per idle connection |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| backend direct | ${RPS[backend]} | ${P99[backend]} | | | |"
  for n in nginx traefik boma boma-m boma-s; do
    label=$n; [ "$n" = boma-s ] && label="boma, opt-level s (as the Pi binary)"
    [ "$n" = boma-m ] && label="boma, [metrics.prometheus] on"
    echo "| $label | ${RPS[$n]} | ${P99[$n]} | ${RSS_IDLE[$n]} | ${RSS_LOAD[$n]} | ${IDLE_CONN[$n]} |"
  done
  echo
  echo "Then each proxy alone on a core (nginx \`worker_processes 1\`, boma \`[limits] workers = 1\`,"
  echo "Traefik \`GOMAXPROCS=1\`) with \`wrk -t1 -c64 -d${DURATION}s\` and the backend on another"
  echo "(\`PIN=1 TRAEFIK=1 scripts/bench-proxy-cpu.sh\`, $ROUNDS rounds, medians): each proxy's own"
  echo "throughput, where the rounds above give its share of two cores with the load generator and"
  echo "the backend. CPU a request is the proxy's user and system time over the requests served."
  echo
  echo "| one core each | requests/s | p99 latency (ms) | CPU a request (µs) | of which user (µs) |"
  echo "|---|---:|---:|---:|---:|"
  for n in $PINNED; do
    echo "| $n | ${PIN_RPS[$n]} | ${PIN_P99[$n]} | ${PIN_CPU[$n]} | ${PIN_USER[$n]} |"
  done
  echo
  echo "Ratios (budgets from DESIGN.md §6):"
  echo
  echo "| ratio | all on two cores | one core each | budget |"
  echo "|---|---:|---:|---|"
  echo "| boma / nginx requests/s | $(ratio "${RPS[boma]}" "${RPS[nginx]}") | $(ratio "${PIN_RPS[boma]}" "${PIN_RPS[nginx]}") | ≥ 1 |"
  echo "| boma / Traefik requests/s | $(ratio "${RPS[boma]}" "${RPS[traefik]}") | $(ratio "${PIN_RPS[boma]}" "${PIN_RPS[traefik]}") | ≥ 3 |"
  echo "| boma / nginx p99 | $(ratio "${P99[boma]}" "${P99[nginx]}") | $(ratio "${PIN_P99[boma]}" "${PIN_P99[nginx]}") | ≤ 1 |"
  echo "| boma / nginx CPU a request | | $(ratio "${PIN_CPU[boma]}" "${PIN_CPU[nginx]}") | (no budget) |"
  echo "| boma / Traefik RSS after load | $(ratio "${RSS_LOAD[boma]}" "${RSS_LOAD[traefik]}") | | ≤ 0.1 |"
  echo "| boma / nginx memory per idle connection | $(ratio "${IDLE_CONN[boma]}" "${IDLE_CONN[nginx]}") | | (no budget) |"
  echo "| boma / Traefik memory per idle connection | $(ratio "${IDLE_CONN[boma]}" "${IDLE_CONN[traefik]}") | | (no budget) |"
  echo "| boma opt-level s / boma requests/s | $(ratio "${RPS[boma-s]}" "${RPS[boma]}") | | (the Pi binary's cost of its size) |"
  echo "| boma metrics on / off requests/s | $(ratio "${RPS[boma-m]}" "${RPS[boma]}") | | ≥ 0.95 (issue 13) |"
  echo
  echo "Versions: $(nginx -v 2>&1 | sed 's/^nginx version: //'), Traefik $(traefik version 2>/dev/null | awk '/^Version/{print $2}'), boma $("$BOMA" version | awk '{print $2}'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')."
}

# ============================================================================================
# Size of the static aarch64 binary as shipped (scripts/cross.sh: opt-level s, fat LTO, strip),
# the same at opt-level 3, and the largest crates of the shipped build (cargo bloat reads an
# unstripped build of the same settings).
TARGET=aarch64-unknown-linux-musl
if want size; then
  command -v cargo-bloat >/dev/null || cargo install -q cargo-bloat --locked
  scripts/cross.sh >&2
  SIZE_SHIPPED=$(stat -c %s "target/$TARGET/release/boma")
  SECTIONS_TABLE=$(aarch64-linux-gnu-size -A "target/$TARGET/release/boma" | awk '$2 > 32768 && $1 ~ /^\./ {printf "| %s | %.0f |\n", $1, $2/1024}')
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C opt-level=3" CARGO_TARGET_DIR=target/opt-3 \
    cargo build -q --release --target "$TARGET" >&2
  SIZE_O3=$(stat -c %s "target/opt-3/$TARGET/release/boma")
  BLOAT=$(CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=target/bloat \
    cargo bloat -q --release --target "$TARGET" --bin boma --crates -n 20 2>/dev/null)
fi

size_section() {
  echo "## Binary size"
  echo
  echo "The static aarch64 binary, as shipped in the image."
  echo
  echo "Command: \`make aarch64\` (scripts/cross.sh: fat LTO, one codegen unit, stripped, and"
  echo "\`-C opt-level=s\` for this target in .cargo/config.toml); crates by"
  echo "\`cargo bloat --release --target $TARGET --crates\` on an unstripped build of the same settings."
  echo
  echo "| build | bytes | MiB | budget |"
  echo "|---|---:|---:|---|"
  echo "| shipped (opt-level s) | $SIZE_SHIPPED | $(awk -v s="$SIZE_SHIPPED" 'BEGIN{printf "%.2f", s/1048576}') | ≤ 8 MiB (DESIGN.md §6, TLS, metrics and updates in) |"
  echo "| same code at opt-level 3 | $SIZE_O3 | $(awk -v s="$SIZE_O3" 'BEGIN{printf "%.2f", s/1048576}') | |"
  echo
  echo "The size setting costs the proxy the throughput in the \"opt-level s\" row of the proxy"
  echo "table (same code, x86)."
  echo
  echo "Sections of the shipped binary over 32 KiB:"
  echo
  echo "| section | KiB |"
  echo "|---|---:|"
  echo "$SECTIONS_TABLE"
  echo
  echo "Largest crates (share of .text; \"std\" includes generic code instantiated for boma's types):"
  echo
  echo '```'
  echo "$BLOAT" | grep -v '^$' | grep -v '^Note:'
  echo '```'
}

if want docker; then
  DOCKER_SECTION=$(python3 scripts/bench-docker.py "$BOMA" 50)
fi
if want dhcp; then
  DHCP_SECTION=$(scripts/bench-dhcp.sh "$BOMA")
fi
if want memory; then
  # The same code built against musl, the image's C library (its allocator behaves differently).
  MUSL_BOMA=""
  if command -v musl-gcc >/dev/null && CC_x86_64_unknown_linux_musl=musl-gcc \
      cargo build --release --target x86_64-unknown-linux-musl >&2; then
    MUSL_BOMA=target/x86_64-unknown-linux-musl/release/boma
  else
    echo "bench: no musl build (apt-get install musl-tools); memory measured on glibc only" >&2
  fi
  MEMORY_SECTION=$(scripts/bench-memory.sh "$BOMA" $MUSL_BOMA)
fi

cpu=$(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/^ *//')
{
  echo "# Benchmarks"
  echo
  echo "Made by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu)."
  echo "Every figure of a section comes from one run; re-run \`make bench\` to refresh them"
  echo "(\`SECTIONS=\"dns size\"\`, say, refreshes those sections and keeps the others)."
  echo
  if want proxy; then proxy_section; echo; kept_notes "## Reverse proxy"; else kept_section "## Reverse proxy"; fi
  # Written by hand (a perf profile needs a build with symbols), kept across runs.
  echo
  kept_section "## Reverse proxy profile"
  echo
  if want dns; then dns_section; else kept_section "## DNS"; fi
  echo
  if want docker; then echo "$DOCKER_SECTION"; else kept_section "## Container discovery"; fi
  echo
  if want dhcp; then echo "$DHCP_SECTION"; else kept_section "## DHCP"; fi
  echo
  if want memory; then echo "$MEMORY_SECTION"; echo; kept_notes "## Memory per route"; else kept_section "## Memory per route"; fi
  echo
  if want size; then size_section; else kept_section "## Binary size"; fi
  # Written by hand from cargo-fuzz runs (nightly), kept across runs.
  echo
  kept_section "## Fuzzing"
} | cat -s > "$OUT.new"
mv "$OUT.new" "$OUT"
echo "bench: wrote $OUT" >&2
