#!/usr/bin/env bash
# Regenerates the simulator's committed ground-truth captures in captures/sim/ (every
# built-in scenario but `large`), gzip-compressed without timestamps so the bytes only depend
# on the simulator. tests/sim.rs checks they are up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
for s in no-nat one-nat both-nat-udp-blocked conference phone-home churn; do
    d=captures/sim/$s
    mkdir -p "$d"
    ./target/release/p2ptrace sim "$s" --out "$d" --quiet
    gzip -9nf "$d/capture.pcapng" "$d/labels.csv" "$d/events.csv"
done
