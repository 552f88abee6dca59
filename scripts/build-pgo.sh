#!/usr/bin/env bash
# Builds a profile-guided (PGO) release binary of p2ptrace at target/pgo/p2ptrace: the
# rustc book's workflow (instrumented build, training runs, llvm-profdata merge, optimized
# build). Training is a fresh 3-minute `sim large` capture with another seed than the
# benchmark's, analyzed with and without dissection, plus the committed captures; the
# benchmark capture itself is never used. The optimized binary must write byte-identical
# CSVs to the instrumented one on every training capture, or the script fails.
#
#   scripts/build-pgo.sh                     # ~5 min on 2 cores
#   scripts/build-pgo.sh --install-llvm      # as root: apt-get llvm-NN if nothing else has llvm-profdata (CI)
#   TOOLS="p2ptrace p2ptrace-pgo" CAP=big/capture.pcapng benches/compare.sh
#
# Needs llvm-profdata of rustc's LLVM version: rustup's llvm-tools component (added when
# missing) or Debian's llvm-NN package. No root unless --install-llvm installs it.
set -euo pipefail
install_llvm=false
case "${1:-}" in
  "") ;;
  --install-llvm) install_llvm=true ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  *) echo "build-pgo: unexpected argument '$1' (only --install-llvm; --help says what it does)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
# llvm-profdata of rustc's own LLVM: the toolchain's llvm-tools component, else Debian's
# llvm-$llvm (same major version, same raw profile format).
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
[ -x "$profdata" ] || rustup component add llvm-tools >&2 || true
[ -x "$profdata" ] || profdata=$(command -v "llvm-profdata-$llvm" || true)
if [ -z "$profdata" ] && $install_llvm; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "llvm-$llvm" > /dev/null
  profdata=$(command -v "llvm-profdata-$llvm" || true)
fi
[ -n "$profdata" ] || {
  echo "build-pgo: no llvm-profdata for LLVM $llvm: rustup component add llvm-tools, or apt-get install llvm-$llvm" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/p2ptrace-pgo.XXXXXX")
trap 'rm -rf "$work"' EXIT
# An explicit --target keeps the flags off build scripts and proc macros (they would be
# instrumented and profiled too).
build() { # build TARGET_DIR RUSTFLAGS
  RUSTFLAGS="$2" cargo build --release --quiet --locked --bin p2ptrace \
    --target "$host" --target-dir "$1"
  echo "$1/$host/release/p2ptrace"
}

echo "build-pgo: instrumented build" >&2
gen=$(build target/pgo-gen "-Cprofile-generate=$work/profiles")

echo "build-pgo: training" >&2
"$gen" sim large --seed 7 --duration 3m --out "$work/train" --quiet > /dev/null
captures=("$work/train/capture.pcapng" captures/voip-mix.pcap captures/sim/*/capture.pcapng.gz)
analyze() { # analyze BIN OUT_PREFIX
  local i=0
  for cap in "${captures[@]}"; do
    "$1" analyze --quiet "$cap" --csv "$2-$i" > "$2-$i.summary" 2> "$work/log" ||
      { cat "$work/log" >&2; exit 1; }
    i=$((i + 1))
  done
  "$1" analyze --quiet --no-dissect "${captures[0]}" --csv "$2-flows" > /dev/null 2> "$work/log" ||
    { cat "$work/log" >&2; exit 1; }
}
analyze "$gen" "$work/gen"
"$profdata" merge -o "$work/p2ptrace.profdata" "$work/profiles"

echo "build-pgo: optimized build" >&2
use=$(build target/pgo-use "-Cprofile-use=$work/p2ptrace.profdata")
analyze "$use" "$work/use"
for out in "$work"/gen-*; do
  diff -r "$out" "${out/\/gen-/\/use-}" > /dev/null ||
    { echo "build-pgo: the optimized binary's output differs from $out" >&2; exit 1; }
done

mkdir -p target/pgo
cp "$use" target/pgo/p2ptrace
echo "build-pgo: wrote target/pgo/p2ptrace" >&2
