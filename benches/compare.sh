#!/usr/bin/env bash
# Side-by-side throughput of `p2ptrace analyze --csv` against tshark's conversation
# statistics and ndpiReader on the same synthetic capture, same machine, one run.
# Prints packets/s (wall clock), peak RSS and CPU seconds (all threads) for each, and the
# ratios.
#
#   benches/compare.sh                      # 1 M packets, 20 k flows (default)
#   PACKETS=10000000 FLOWS=200000 benches/compare.sh
#   TOOLS="p2ptrace-flows p2ptrace ndpi" benches/compare.sh   # skip tshark (slow on big files)
#   CAP=big/capture.pcapng TOOLS="p2ptrace ndpi" benches/compare.sh  # any capture (packets
#                                           # counted with capinfos), e.g. `p2ptrace sim large`
#   TOOLS="p2ptrace p2ptrace-pgo" benches/compare.sh  # also the profile-guided build
#                                           # (scripts/build-pgo.sh makes target/pgo/p2ptrace)
#   PIN=0 CAP=big/capture.pcapng TOOLS="p2ptrace ndpi" benches/compare.sh  # every tool on
#                                           # CPU 0 only (taskset): one-core throughput
#   TOOLS="p2ptrace p2ptrace-msgs" benches/compare.sh  # also with messages.csv listing only
#                                           # some classes (MESSAGES=-keepalive by default)
#   WORK=/var/tmp/bench ...                 # inputs and reports there: a disk, not tmpfs (the
#                                           # big reports are written past the page cache;
#                                           # on tmpfs they fill fresh pages; docs/performance.md)
#   ROUNDS=3 ...                            # every tool 3 times, order rotated: medians
#   BIN=old/p2ptrace PGO_BIN=new/p2ptrace TOOLS="p2ptrace p2ptrace-pgo" ...  # two builds
#                                           # side by side (rows keep the tool names)
#   TOOLS="p2ptrace ndpi-ref" ...           # also ndpiReader on the 10 M-packet synthetic
#                                           # file, whose speed on the reference machine
#                                           # ../shared/bench/README.md gives: how fast this
#                                           # host is now, and p2ptrace's speed scaled to it
#
# Needs python3, GNU time (/usr/bin/time; apt-get install time), and for the
# comparisons tshark and ndpiReader, and capinfos for CAP= (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKETS=${PACKETS:-1000000}
FLOWS=${FLOWS:-20000}
TOOLS=${TOOLS:-"p2ptrace-flows p2ptrace tshark ndpi"}
ROUNDS=${ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: ROUNDS must be a positive number" >&2; exit 2; }
read -ra tools <<< "$TOOLS"
for t in "${tools[@]}"; do
  case $t in
    p2ptrace | p2ptrace-flows | p2ptrace-msgs | p2ptrace-pgo | p2ptrace-pgo-flows | tshark | ndpi | ndpi-ref) ;;
    *) echo "compare.sh: unknown tool $t" >&2; exit 2 ;;
  esac
done
WORK=${WORK:-/tmp/p2ptrace-bench}
GEN=../shared/bench/gen_pcap.py
mkdir -p "$WORK"
if [ -n "${CAP:-}" ]; then
  [ -f "$CAP" ] || { echo "compare.sh: $CAP not found" >&2; exit 1; }
  PACKETS=$(capinfos -c -M -T "$CAP" | tail -n 1 | cut -f2)
  FLOWS="?"
fi
CAP=${CAP:-"$WORK/voip_${PACKETS}_${FLOWS}.pcap"}
# The file of the reference figures in ../shared/bench/README.md, and ndpiReader's speed on
# it there (2-core machine of this project's kind, page cache, median of 3 runs).
REF_PACKETS=10000000 REF_FLOWS=200000
REF=$WORK/voip_${REF_PACKETS}_${REF_FLOWS}.pcap
REF_NDPI_PPS=660000

# generate FILE PACKETS FLOWS : the synthetic capture, unless FILE exists
generate() {
  [ -f "$1" ] && return
  [ -f "$GEN" ] || { echo "compare.sh: $GEN not found" >&2; exit 1; }
  echo "generating $1 ..." >&2
  python3 "$GEN" --packets "$2" --flows "$3" --seed 1 --out "$1" >&2
}
generate "$CAP" "$PACKETS" "$FLOWS"
case " $TOOLS " in *" ndpi-ref "*) generate "$REF" "$REF_PACKETS" "$REF_FLOWS" ;; esac
[ -x /usr/bin/time ] || { echo "compare.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
# PIN=CPU: each tool runs on that one CPU, all its threads taking turns.
PINNED=()
if [ -n "${PIN:-}" ]; then
  taskset -c "$PIN" true || { echo "compare.sh: cannot pin to CPU $PIN" >&2; exit 1; }
  PINNED=(taskset -c "$PIN")
fi

# BIN= and PGO_BIN= name other binaries for `p2ptrace` and `p2ptrace-pgo` (e.g. an older
# build against this one in the same run, where the host's speed is the same for both).
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/p2ptrace
fi
[ -x "$BIN" ] || { echo "compare.sh: $BIN is not an executable" >&2; exit 1; }
PGO_BIN=${PGO_BIN:-target/pgo/p2ptrace}
case " $TOOLS " in
  *" p2ptrace-pgo"*)
    [ -x "$PGO_BIN" ] ||
      { echo "compare.sh: $PGO_BIN not found: run scripts/build-pgo.sh first" >&2; exit 1; }
    [ -z "$(find src dissectors/src Cargo.lock -newer "$PGO_BIN" -print -quit)" ] ||
      echo "compare.sh: warning: $PGO_BIN is older than the sources (rerun scripts/build-pgo.sh)" >&2 ;;
esac

# run NAME CMD... : prints "NAME seconds peak_kB cpu_seconds" (cpu: user + system, all threads)
run() {
  local name=$1; shift
  local t0 t1
  # Read the capture first, untimed, before every run: pages of the page cache left idle
  # for a while are slow to read again on these VMs (a 768 MB capture idle for an hour:
  # 0.89 s to read, then 0.12 s), so a run after a pause would pay for it.
  cat "$CAP" > /dev/null
  t0=$(date +%s.%N)
  /usr/bin/time -f "%M %U %S" -o "$WORK/$name.rss" "${PINNED[@]}" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" || {
    echo "compare.sh: $name failed, see $WORK/$name.err" >&2; return 1; }
  t1=$(date +%s.%N)
  set -- $(tail -n 1 "$WORK/$name.rss")
  echo "$name $(echo "$t1 - $t0" | bc -l) $1 $(echo "$2 + $3" | bc -l)"
}

# analyze NAME BIN [ARGS...] : `BIN analyze ARGS CAP --csv`, timed as NAME
analyze() {
  local name=$1 bin=$2; shift 2
  # The previous run's reports are freed here, untimed, not by this run truncating them.
  rm -rf "$WORK/out"
  run "$name" "$bin" analyze --quiet "$@" "$CAP" --csv "$WORK/out"
}

# one TOOL : runs TOOL once and prints its result line (nothing when its program is missing).
one() {
  case $1 in
    # Flow statistics only (decode + flow table + flows.csv).
    p2ptrace-flows) analyze "$1" "$BIN" --no-dissect ;;
    # The default job: flows, dissection, classification and every report.
    p2ptrace) analyze "$1" "$BIN" ;;
    # Every report, messages.csv listing only the classes --messages selects.
    p2ptrace-msgs) analyze "$1" "$BIN" --messages "${MESSAGES:--keepalive}" ;;
    # The same two jobs with the profile-guided build.
    p2ptrace-pgo) analyze "$1" "$PGO_BIN" ;;
    p2ptrace-pgo-flows) analyze "$1" "$PGO_BIN" --no-dissect ;;
    tshark) if command -v tshark >/dev/null; then
              run tshark tshark -n -r "$CAP" -q -z conv,udp -z conv,tcp; fi ;;
    ndpi) if command -v ndpiReader >/dev/null; then run ndpi ndpiReader -i "$CAP" -q; fi ;;
    # The yardstick: the same program on the reference file (its own capture, read first).
    ndpi-ref) if command -v ndpiReader >/dev/null; then
                CAP=$REF run ndpi-ref ndpiReader -i "$REF" -q; fi ;;
  esac
}

# ROUNDS=N runs every tool N times, the order rotated by one each round: the first tool of
# a round pays for faulting in fresh pages (docs/performance.md). The table gives each
# tool's median time (the lower middle one for an even N) and, with N > 1, its range.
: > "$WORK/results"
for ((r = 0; r < ROUNDS; r++)); do
  for ((i = 0; i < ${#tools[@]}; i++)); do
    one "${tools[(i + r) % ${#tools[@]}]}" >> "$WORK/results"
  done
done

# middle : the middle line of sorted numbers on stdin (the lower one of two)
middle() {
  local sorted
  sorted=$(sort -g)
  sed -n "$((($(wc -l <<< "$sorted") + 1) / 2))p" <<< "$sorted"
}

echo
rounds="" range_head=""
[ "$ROUNDS" -gt 1 ] && rounds=", median of $ROUNDS rounds" range_head="min-max s"
echo "capture: $CAP ($PACKETS packets, $FLOWS flows, $(du -h "$CAP" | cut -f1))${PIN:+, every tool on CPU $PIN}$rounds"
printf '%-18s %10s %14s %10s %12s %9s%s\n' tool seconds packets/s peak_MB "vs p2ptrace" cpu_s "${range_head:+ $range_head}"
base="" scaled=""
for t in "${tools[@]}"; do
  lines=$(awk -v t="$t" '$1 == t' "$WORK/results")
  [ -n "$lines" ] || continue
  secs=$(awk '{print $2}' <<< "$lines" | middle)
  kb=$(awk '{print $3}' <<< "$lines" | sort -g | tail -n 1)
  cpu=$(awk '{print $4}' <<< "$lines" | middle)
  range=""
  [ "$ROUNDS" -gt 1 ] &&
    range=$(awk '{print $2}' <<< "$lines" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}')
  if [ "$t" = ndpi-ref ]; then
    # Another file: its own packet count, and no ratio to p2ptrace.
    ref_pps=$(echo "$REF_PACKETS / $secs" | bc -l)
    printf '%-18s %10.3f %14.0f %10.1f %12s %9.2f%s\n' "$t" "$secs" "$ref_pps" "$(echo "$kb / 1024" | bc -l)" "(ref. file)" "$cpu" "${range:+ $range}"
    continue
  fi
  pps=$(echo "$PACKETS / $secs" | bc -l)
  [ -z "$base" ] && base=$pps
  printf '%-18s %10.3f %14.0f %10.1f %11.2fx %9.2f%s\n' "$t" "$secs" "$pps" "$(echo "$kb / 1024" | bc -l)" "$(echo "$base / $pps" | bc -l)" "$cpu" "${range:+ $range}"
  scaled+="$t $pps"$'\n'
done
if [ -n "${ref_pps:-}" ]; then
  speed=$(echo "$ref_pps / $REF_NDPI_PPS" | bc -l)
  printf '\nthis host runs ndpiReader on the reference file at %.2fx the reference machine (%.2f M against %.2f M packets/s, ../shared/bench/README.md);\n' "$speed" "$(echo "$ref_pps / 1000000" | bc -l)" "$(echo "$REF_NDPI_PPS / 1000000" | bc -l)"
  echo "the same medians scaled to that machine (packets/s divided by that factor):"
  while read -r t pps; do
    if [ -n "$t" ]; then printf '  %-18s %14.0f\n' "$t" "$(echo "$pps / $speed" | bc -l)"; fi
  done <<< "${scaled:-}"
fi
