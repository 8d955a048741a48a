#!/usr/bin/env bash
# Make the sample captures: real traffic between two Linux network namespaces joined by a
# veth pair, captured by tcpdump on the client's side of the pair.
#
#   server namespace fksrv-PID: 10.99.0.1, fd99::1   (http.server on TCP 80, 8080, 8000;
#                                                 DNS-like responder on UDP 53; UDP echo on 7)
#   client namespace fkcli-PID: 10.99.0.2, 10.99.0.3 (scanner), fd99::2
#   10.99.0.9: a blackholed address; the client's neighbour table sends it to a MAC address
#              nobody owns, so its SYNs go out on the wire and are never answered
#
# The addresses exist only inside the namespaces, so no packet leaves this machine.
# Run as root from anywhere: sudo sample_pcaps/make_samples.sh   (needs ip, ss, tcpdump, python3;
# editcap for the pcapng copy). Takes about 30 seconds.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE}"
# per-run namespace names: two runs at once (parallel CI jobs) do not meet
SRV="fksrv-$$"
CLI="fkcli-$$"
PY=python3
PIDS=()
declare -A CAP_LOG

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$SRV"
ip netns add "$CLI"
for ns in "$SRV" "$CLI"; do
    # no router solicitations and no duplicate address detection (link-local addresses
    # included): the samples hold only the traffic the scenarios make
    for conf in default all; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.$conf.router_solicitations=0
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.$conf.accept_dad=0
    done
done
# created straight inside the namespaces: the interface names never exist outside them
ip link add fk-cli netns "$CLI" type veth peer name fk-srv netns "$SRV"
# fixed MAC addresses so every run produces the same link-layer headers
ip -n "$CLI" link set fk-cli address 02:00:0a:63:00:02
ip -n "$SRV" link set fk-srv address 02:00:0a:63:00:01
ip -n "$SRV" addr add 10.99.0.1/24 dev fk-srv
ip -n "$SRV" addr add fd99::1/64 dev fk-srv nodad
ip -n "$CLI" addr add 10.99.0.2/24 dev fk-cli
ip -n "$CLI" addr add 10.99.0.3/24 dev fk-cli
ip -n "$CLI" addr add fd99::2/64 dev fk-cli nodad
for ns in "$SRV" "$CLI"; do
    ip -n "$ns" link set lo up
done
ip -n "$SRV" link set fk-srv up
ip -n "$CLI" link set fk-cli up
# static neighbour entries: no ARP or neighbour discovery in the captures, same bytes every run
ip -n "$CLI" neigh add 10.99.0.1 lladdr 02:00:0a:63:00:01 dev fk-cli nud permanent
ip -n "$CLI" neigh add fd99::1 lladdr 02:00:0a:63:00:01 dev fk-cli nud permanent
for a in 10.99.0.2 10.99.0.3 fd99::2; do
    ip -n "$SRV" neigh add "$a" lladdr 02:00:0a:63:00:02 dev fk-srv nud permanent
done
# SYNs to the blackholed address get no answer: the client kernel retries them
ip -n "$CLI" neigh add 10.99.0.9 lladdr 02:00:00:00:00:09 dev fk-cli nud permanent

WEBROOT="$(mktemp -d)"
printf '<html><body>flowkit sample page</body></html>\n' > "$WEBROOT/index.html"
for port in 80 8080 8000; do
    ip netns exec "$SRV" "$PY" -m http.server "$port" --bind :: --directory "$WEBROOT" >/dev/null 2>&1 &
    PIDS+=($!)
done
ip netns exec "$SRV" "$PY" "$HERE/sample_servers.py" dns &
PIDS+=($!)
ip netns exec "$SRV" "$PY" "$HERE/sample_servers.py" echo &
PIDS+=($!)

# wait until every server listens (and the links' multicast listener reports are done)
sleep 3
for _ in $(seq 50); do
    n=$(ip netns exec "$SRV" ss -Hltun | grep -cE ':(80|8080|8000|53|7)\s' || true)
    [ "$n" -ge 5 ] && break
    sleep 0.1
done
LOGS="$(mktemp -d)"

start_capture() {  # start_capture FILE [tcpdump options...]; sets CAP_PID
    local file="$1"; shift
    local log="$LOGS/$(basename "$file").log"
    # a large buffer: with three captures at once the kernel must drop nothing
    # the scenarios are all unicast: multicast (the kernel's own MLD reports, sent on its own
    # schedule, which under load can fall between two scenario captures) is left out, so
    # mixed.pcap holds exactly the packets of the scenario captures
    ip netns exec "$CLI" tcpdump -Z root --immediate-mode -B 32768 -U -n -i fk-cli "$@" -w "$file" \
        'not ip multicast and not ip6 multicast' 2>"$log" &
    CAP_PID=$!
    PIDS+=("$CAP_PID")
    CAP_LOG["$CAP_PID"]="$log"
    for _ in $(seq 50); do grep -q "listening on" "$log" && break; sleep 0.1; done
}

stop_capture() {  # stop_capture PID: fails when tcpdump reports dropped packets
    sleep 0.5
    kill -INT "$1"
    wait "$1" 2>/dev/null || true
    local log="${CAP_LOG[$1]}"
    if ! grep -q "^0 packets dropped by kernel" "$log"; then
        echo "tcpdump dropped packets:" >&2; cat "$log" >&2; exit 1
    fi
}

client() { ip netns exec "$CLI" "$PY" "$HERE/sample_clients.py" "$@"; }

start_capture "$OUT/mixed.pcap"
MIXED=$CAP_PID
for scenario in http dns refused unanswered ephemeral scan ipv6; do
    if [ "$scenario" = http ]; then
        # the same HTTP traffic cut to 96 bytes per packet (tcpdump -s 96)
        start_capture "$OUT/$scenario.pcap"; one=$CAP_PID
        start_capture "$OUT/http-snap96.pcap" -s 96; two=$CAP_PID
        client "$scenario"
        stop_capture "$one"; stop_capture "$two"
    else
        start_capture "$OUT/$scenario.pcap"; one=$CAP_PID
        client "$scenario"
        stop_capture "$one"
    fi
    echo "made $OUT/$scenario.pcap"
done
stop_capture "$MIXED"
echo "made $OUT/mixed.pcap"

if command -v editcap >/dev/null; then
    editcap -F pcapng "$OUT/mixed.pcap" "$OUT/mixed.pcapng"
    echo "made $OUT/mixed.pcapng"
fi
rm -rf "$WEBROOT" "$LOGS"
ls -l "$OUT"/*.pcap*
