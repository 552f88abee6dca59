#!/usr/bin/env bash
# Installs the system tools p2ptrace's tests and benchmarks use: tshark (flow parity tests),
# ndpiReader and tcpdump (benches/compare.sh), libpcap-dev (the `--features libpcap` build),
# iproute2 and nftables (the real-network lab: namespaces, veths, NAT, firewalls), tcpreplay
# (the live-capture benchmark), valgrind (benches/instructions.sh), GNU time and bc
# (benches/compare.sh) and tmux (the TUI's end-to-end test). The default build needs none
# of them. Needs root (or sudo) and Debian/Ubuntu; installs only what is missing.
set -euo pipefail
need=()
command -v tshark >/dev/null || need+=(tshark)
command -v ndpiReader >/dev/null || need+=(libndpi-bin)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v tcpreplay >/dev/null || need+=(tcpreplay)
command -v tmux >/dev/null || need+=(tmux)
command -v valgrind >/dev/null || need+=(valgrind)
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null || need+=(bc)
[ -e /usr/include/pcap.h ] || [ -e /usr/include/pcap/pcap.h ] || need+=(libpcap-dev)
if [ ${#need[@]} -eq 0 ]; then
  echo "setup: every tool is already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
