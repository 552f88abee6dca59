#!/usr/bin/env bash
# Instructions executed by `p2ptrace analyze --csv` on one capture, counted by valgrind's
# callgrind, for one or more builds; checks that their reports are byte-identical.
#
# Wall-clock times on this project's VMs swing by up to 2x between runs; an instruction
# count does not move, so it tells whether a change made less work even when the clock
# cannot. It is not a speed: cache misses do not show in it (use benches/compare.sh for
# packets/s, and report both).
#
#   benches/instructions.sh CAPTURE OLD_BINARY [NEW_BINARY ...]
#   e.g. cp target/release/p2ptrace /tmp/p2ptrace-old; (change, cargo build --release)
#        benches/instructions.sh big/capture.pcapng /tmp/p2ptrace-old target/release/p2ptrace
#
# About 50x slower than a normal run (a 10-minute `sim large` capture: ~6 min per build).
# Needs valgrind (apt-get install valgrind).
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
CAP=$1; shift
[ -f "$CAP" ] || { echo "instructions.sh: $CAP not found" >&2; exit 1; }
command -v valgrind > /dev/null ||
  { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
# The lookahead switches itself on and off by timing (src/lookahead.rs), and under valgrind
# that timing varies from run to run: the same binary counted 2 % apart. Fixed off unless
# set, so counts repeat (P2PTRACE_LOOKAHEAD=on counts the other configuration).
export P2PTRACE_LOOKAHEAD=${P2PTRACE_LOOKAHEAD:-off}
WORK=$(mktemp -d /tmp/p2ptrace-instructions.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

first=""
i=0
for bin in "$@"; do
  [ -x "$bin" ] || { echo "instructions.sh: $bin is not an executable" >&2; exit 1; }
  i=$((i + 1))
  out="$WORK/$i"
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$bin" analyze -q "$CAP" --csv "$out" > "$WORK/$i.summary" 2> "$WORK/$i.log" ||
    { echo "instructions.sh: $bin failed, see the log:" >&2; tail -5 "$WORK/$i.log" >&2; exit 1; }
  frames=$(awk '/^packets/ { gsub(",", "", $2); print $2; exit }' "$WORK/$i.summary")
  refs=$(awk '/I *refs:/ { gsub(",", "", $NF); print $NF }' "$WORK/$i.log")
  per=""
  [ -n "$frames" ] && per=$(awk -v r="$refs" -v f="$frames" 'BEGIN { printf " (%.0f per frame)", r / f }')
  if [ -z "$first" ]; then
    first=$refs
    echo "$bin: $refs instructions$per"
  else
    awk -v b="$bin" -v r="$refs" -v f="$first" -v p="$per" \
      'BEGIN { printf "%s: %s instructions%s, %+.2f %% against the first\n", b, r, p, (r - f) * 100 / f }'
    if ! diff -rq "$WORK/1" "$out" > /dev/null; then
      echo "instructions.sh: $bin wrote different reports than $1:" >&2
      diff -rq "$WORK/1" "$out" >&2 || true
      exit 1
    fi
  fi
done
[ $# -lt 2 ] || echo "reports byte-identical across all $# builds"
