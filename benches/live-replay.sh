#!/usr/bin/env bash
# Live-capture throughput: replays a 1 M-packet capture with tcpreplay onto a veth pair
# between two network namespaces this script creates (and always deletes), while
# `p2ptrace live` captures the receiving end, once per backend (afpacket, libpcap):
#   1. --topspeed: the rate tcpreplay reaches and what the capture lost at it;
#   2. a binary search with --pps over PROBE-packet runs for the highest rate with zero drops
#      (kernel + queue drops, and frames sent but never analysed).
# Needs root, tcpreplay, iproute2, python3. Usage (from the repository):
#   sudo benches/live-replay.sh            PACKETS=1000000 PROBE=200000 STEPS=5 by default
#   sudo BACKENDS=libpcap STEPS=0 benches/live-replay.sh   # one backend, top speed only
#   sudo REPLAY=big/capture.pcapng LIVE_ARGS="--csv /tmp/out" STEPS=0 BACKENDS=afpacket \
#        benches/live-replay.sh   # the first PACKETS frames of a given capture (e.g. the
#                                 # simulator's `large`), analysed with every report written
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "live-replay.sh: needs root (namespaces, capture)" >&2; exit 1; }
for t in tcpreplay ip python3; do
    command -v "$t" >/dev/null || { echo "live-replay.sh: $t not installed" >&2; exit 1; }
done
PACKETS="${PACKETS:-1000000}"
REPLAY="${REPLAY:-}"
LIVE_ARGS="${LIVE_ARGS:-}"
PROBE="${PROBE:-200000}"
STEPS="${STEPS:-5}"
BACKENDS="${BACKENDS:-afpacket libpcap}"
TX=p2pt-bench-tx
RX=p2pt-bench-rx
work="$(mktemp -d)"
cleanup() {
    ip netns del "$TX" 2>/dev/null || true
    ip netns del "$RX" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

cargo build --release --quiet --features libpcap
bin="${CARGO_TARGET_DIR:-target}/release/p2ptrace"

# A UDP capture: 2,000 flows of 60-byte payloads, Ethernet/IPv4, valid IP checksums.
if [ -z "$REPLAY" ]; then
python3 - "$work/replay.pcap" "$PACKETS" <<'PY'
import struct, sys
out, n = sys.argv[1], int(sys.argv[2])
def csum(h):
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
payload = bytes(range(60))
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    for i in range(n):
        flow = i % 2000
        src = bytes([10, 0, flow >> 8, flow & 255]); dst = bytes([10, 1, flow >> 8, flow & 255])
        udp = struct.pack("!HHHH", 20000 + flow, 40000, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0x4000, 64, 17, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = eth + ip + udp
        ts = 1_700_000_000 * 1_000_000 + i * 10
        f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
        f.write(frame)
PY
fi
replay="${REPLAY:-$work/replay.pcap}"

ip netns add "$TX"
ip netns add "$RX"
ip link add vtx netns "$TX" type veth peer name vrx netns "$RX"
ip -n "$TX" link set vtx up
ip -n "$RX" link set vrx up
ip -n "$RX" link set lo up

# run BACKEND TCPREPLAY_RATE_ARGS... → prints "sent pps_achieved analysed kernel_drops queue_drops"
run() {
    local backend="$1"; shift
    local out="$work/live.out" err="$work/live.err"
    # shellcheck disable=SC2086 # LIVE_ARGS is a list of arguments
    ip netns exec "$RX" "$bin" live vrx --backend "$backend" -q $LIVE_ARGS >"$out" 2>"$err" &
    local pid=$!
    sleep 1.5
    local rep
    rep="$(ip netns exec "$TX" tcpreplay -K -i vtx "$@" "$replay" 2>&1)"
    sleep 1
    kill -INT "$pid"
    wait "$pid" || { echo "p2ptrace live failed:" >&2; cat "$err" >&2; return 1; }
    local sent pps analysed kdrop qdrop
    sent="$(sed -n 's/.*Successful packets: *\([0-9]*\).*/\1/p' <<<"$rep")"
    pps="$(sed -n 's/.*Rated:.* \([0-9.]*\) pps.*/\1/p' <<<"$rep" | head -1)"
    analysed="$(sed -n 's/.*frames captured [0-9,]*, analysed \([0-9,]*\).*/\1/p' "$out" | tr -d ,)"
    kdrop="$(sed -n 's/.*kernel: received [0-9,]*, dropped \([0-9,]*\).*/\1/p' "$out" | tr -d ,)"
    qdrop="$(sed -n 's/.*queue dropped \([0-9,]*\).*/\1/p' "$out" | tr -d ,)"
    echo "${sent:-0} ${pps:-0} ${analysed:-0} ${kdrop:-0} ${qdrop:-0}"
}

lost() { # sent analysed kdrop qdrop → frames lost (sent but not analysed, or counted drops)
    local missing=$(( $1 > $2 ? $1 - $2 : 0 ))
    local counted=$(( $3 + $4 ))
    echo $(( missing > counted ? missing : counted ))
}

printf '%-9s %-28s %10s %12s %10s %8s %8s %8s\n' backend run sent "rate pps" analysed kdrop qdrop lost
for backend in $BACKENDS; do
    read -r sent pps analysed kdrop qdrop < <(run "$backend" --topspeed --limit="$PACKETS")
    printf '%-9s %-28s %10s %12.0f %10s %8s %8s %8s\n' "$backend" "topspeed ($PACKETS)" \
        "$sent" "$pps" "$analysed" "$kdrop" "$qdrop" "$(lost "$sent" "$analysed" "$kdrop" "$qdrop")"
    lo=0; hi="${pps%.*}"
    if [ "$(lost "$sent" "$analysed" "$kdrop" "$qdrop")" = 0 ]; then lo="$hi"; fi
    for _ in $(seq "$STEPS"); do
        [ "$lo" = "$hi" ] && break
        mid=$(( (lo + hi + 1) / 2 ))
        [ "$mid" -lt 1000 ] && mid=1000
        read -r sent pps analysed kdrop qdrop < <(run "$backend" --pps="$mid" --limit="$PROBE")
        l="$(lost "$sent" "$analysed" "$kdrop" "$qdrop")"
        printf '%-9s %-28s %10s %12.0f %10s %8s %8s %8s\n' "$backend" "--pps=$mid ($PROBE)" \
            "$sent" "$pps" "$analysed" "$kdrop" "$qdrop" "$l"
        if [ "$l" = 0 ]; then lo="$mid"; else hi=$(( mid - 1 )); fi
    done
    echo "$backend: highest rate with zero drops found: ${lo} packets/s"
done
