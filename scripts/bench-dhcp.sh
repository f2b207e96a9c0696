#!/usr/bin/env bash
# DHCP side by side: boma and dnsmasq serve the same /16 LAN in a network namespace, one after
# the other; Kea's perfdhcp in a client namespace runs full 4-way exchanges (DISCOVER, OFFER,
# REQUEST, ACK) at a ladder of offered rates. Both write their lease file to the same disk
# (target/, not tmpfs) and both sync it: the cost of a durable lease is in the figures.
# Prints a Markdown section on stdout. Bounded: DHCP_DURATION seconds per rate; every process
# and namespace made here is removed on exit. Needs root (ip netns).
# usage: scripts/bench-dhcp.sh target/release/boma
set -euo pipefail
cd "$(dirname "$0")/.."
BOMA=$1
DUR=${DHCP_DURATION:-5}
RATES=${DHCP_RATES:-2000 5000 10000 20000}
CLIENTS=${DHCP_CLIENTS:-1000}
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
command -v perfdhcp >/dev/null || { echo "bench-dhcp: perfdhcp missing; run make deps" >&2; exit 1; }

mkdir -p target
work=$(mktemp -d -p "$PWD/target" bench-dhcp.XXXXXX)
gw=bdgw$$; cl=bdcl$$
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  ip netns del "$gw" 2>/dev/null || true
  ip netns del "$cl" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$gw"; ip netns add "$cl"
ip link add "v$$" type veth peer name "w$$"
ip link set "v$$" netns "$gw"; ip link set "w$$" netns "$cl"
ip -n "$gw" link set "v$$" name lan0; ip -n "$cl" link set "w$$" name eth0
ip -n "$gw" link set lo up; ip -n "$gw" link set lan0 up
ip -n "$cl" link set lo up; ip -n "$cl" link set eth0 up
ip -n "$gw" addr add 10.88.0.1/21 dev lan0
ip -n "$cl" addr add 10.88.0.2/21 dev eth0

cat > "$work/boma.toml" <<TOML
[lan]
interface = "lan0"
address = "10.88.0.1/21"
[dhcp]
range = ["10.88.1.0", "10.88.7.254"]
lease_time = "1h"
state_dir = "$work/boma-state"
rogue_check = false
TOML

start() { # name
  case "$1" in
    boma) ip netns exec "$gw" "$BOMA" run --config "$work/boma.toml" >/dev/null 2>"$work/boma.log" & ;;
    # The same pool, lease time and durability; no ping before an offer (boma does not ping),
    # a lease table as large as the pool (dnsmasq's default is 1,000).
    dnsmasq) ip netns exec "$gw" "$DNSMASQ" -d -C /dev/null -p 0 -i lan0 --bind-interfaces \
      --dhcp-range=10.88.1.0,10.88.7.254,1h --dhcp-authoritative --no-ping \
      --dhcp-lease-max=2000 --dhcp-leasefile="$work/dnsmasq.leases" >/dev/null 2>"$work/dnsmasq.log" & ;;
  esac
  server=$!
  sleep 1.5
  kill -0 "$server" || { echo "bench-dhcp: $1 did not start" >&2; cat "$work/$1.log" >&2; exit 1; }
}

rss() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

declare -A ACKS DROPS RSS_IDLE RSS_LOAD
for name in dnsmasq boma; do
  start "$name"
  # `ip netns exec` execs the server: $server is its pid.
  RSS_IDLE[$name]=$(rss "$server")
  for rate in $RATES; do
    out=$(ip netns exec "$cl" timeout $((DUR + 10)) perfdhcp -4 -l eth0 -r "$rate" -R "$CLIENTS" -p "$DUR" 2>&1 || true)
    got=$(echo "$out" | awk '/REQUEST-ACK/{f=1} f && /received packets/{print $3; exit}')
    drop=$(echo "$out" | awk '/REQUEST-ACK/{f=1} f && /drops ratio/{print $3; exit}')
    ACKS[$name,$rate]=$(awk -v n="${got:-0}" -v d="$DUR" 'BEGIN{printf "%.0f", n / d}')
    DROPS[$name,$rate]=${drop:-n/a}
  done
  RSS_LOAD[$name]=$(rss "$server")
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
peak() { local n=$1 best=0 r; for r in $RATES; do [ "${ACKS[$n,$r]}" -gt "$best" ] && best=${ACKS[$n,$r]}; done; echo "$best"; }

echo "## DHCP"
echo
echo "Command: \`scripts/bench-dhcp.sh $BOMA\` (part of \`make bench\`): \`perfdhcp -4 -l eth0 -r RATE"
echo "-R $CLIENTS -p $DUR\` in a client network namespace against each server in a gateway namespace"
echo "(one veth, a /21 LAN with a pool of 1,791 addresses, one-hour leases), dnsmasq first, then boma, each"
echo "through the whole ladder of rates. ACKs/s: completed 4-way exchanges per second; drops: share"
echo "of REQUESTs without an ACK. Both sync their lease file on disk before answering. RSS: the"
echo "server process before the first rate and after the last. dnsmasq rewrites and syncs its whole"
echo "lease file for every lease it grants, so on a real disk its rate is bound by the sync (not"
echo "measured here on tmpfs, where a sync costs nothing); boma syncs once per burst"
echo "of up to 64 packets and sends those ACKs only after the sync (group commit)."
echo
echo "| offered exchanges/s | dnsmasq ACKs/s | dnsmasq drops | boma ACKs/s | boma drops |"
echo "|---:|---:|---:|---:|---:|"
for rate in $RATES; do
  echo "| $rate | ${ACKS[dnsmasq,$rate]} | ${DROPS[dnsmasq,$rate]} % | ${ACKS[boma,$rate]} | ${DROPS[boma,$rate]} % |"
done
echo
echo "| | peak ACKs/s | RSS idle (KiB) | RSS after load (KiB) |"
echo "|---|---:|---:|---:|"
for n in dnsmasq boma; do
  echo "| $n | $(peak $n) | ${RSS_IDLE[$n]} | ${RSS_LOAD[$n]} |"
done
echo
echo "| ratio | value | budget |"
echo "|---|---:|---|"
echo "| boma / dnsmasq peak exchanges/s | $(ratio "$(peak boma)" "$(peak dnsmasq)") | ≥ 1 |"
echo "| boma / dnsmasq RSS after load | $(ratio "${RSS_LOAD[boma]}" "${RSS_LOAD[dnsmasq]}") | ≤ 2 |"
echo
echo "Versions: dnsmasq $("$DNSMASQ" --version | awk 'NR==1{print $3}'), perfdhcp $(dpkg-query -W -f='${Version}' kea-admin 2>/dev/null || echo '?'), boma $("$BOMA" version | awk '{print $2}')."
