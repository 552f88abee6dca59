#!/usr/bin/env bash
# Installs the system tools p2ptrace's tests and benchmarks compare against: tshark (flow
# parity tests), ndpiReader and tcpdump (benches/compare.sh). The default build needs none
# of them. Needs root (or sudo) and Debian/Ubuntu; does nothing when they are present.
set -euo pipefail
need=()
command -v tshark >/dev/null || need+=(tshark)
command -v ndpiReader >/dev/null || need+=(libndpi-bin)
command -v tcpdump >/dev/null || need+=(tcpdump)
if [ ${#need[@]} -eq 0 ]; then
  echo "setup: tshark, ndpiReader and tcpdump already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
