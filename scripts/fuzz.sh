#!/bin/sh
# Runs every fuzz target (or those named) for a fixed number of executions, one after another,
# and prints each target's execution count, time and outcome.
#   RUNS=10000000 SANITIZER=none scripts/fuzz.sh [target ...]
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). The corpus grows in
# fuzz/corpus/<target>; a crash stops that target and leaves its input in fuzz/artifacts.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10000000}
SANITIZER=${SANITIZER:-none}
targets=${*:-$(cargo +nightly fuzz list)}
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    start=$(date +%s)
    if cargo +nightly fuzz run -s "$SANITIZER" -O "$t" -- -runs="$RUNS" -print_final_stats=1 \
        >"fuzz/$t.log" 2>&1; then outcome=ok; else outcome="FAILED (see fuzz/$t.log)"; fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "fuzz/$t.log")
    echo "$t executions=${runs:-?} seconds=$(( $(date +%s) - start )) $outcome"
done
