#!/usr/bin/env bash
# Regenerates captures/lab/<scenario>/ : runs the loopback lab for real while capturing `lo`
# (p2ptrace lab --capture; needs root or CAP_NET_RAW), stores capture.pcapng.gz,
# labels.csv.gz and events.csv.gz (gzip -n: no name or time in the header) and scores them.
# The traffic is real, so timestamps, ports and TCP details differ on every run; EXPECT.md
# says what must hold instead (every label matched, precision = recall = 1.0, no drops).
#
# Usage: scripts/regen-lab-capture.sh [SCENARIO_DIR]   (default captures/lab/basic-call)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-captures/lab/basic-call}"
[ -f "$dir/scenario.toml" ] || { echo "no $dir/scenario.toml" >&2; exit 2; }
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/p2ptrace"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" lab "$dir/scenario.toml" --out "$tmp" --capture
for f in capture.pcapng labels.csv events.csv; do
    gzip -n -9 -c "$tmp/$f" > "$dir/$f.gz"
done
"$bin" score "$dir/capture.pcapng.gz" --labels "$dir/labels.csv.gz"
