#!/usr/bin/env bash
# scripts/fuzz-smoke.sh: run every libFuzzer target built from fuzz/fuzz_*.c for a short
# time on a scratch copy of its seeds in fuzz/corpus/<name>/; fails on any crash, leak,
# sanitizer report or timeout. Usage: scripts/fuzz-smoke.sh [BUILD_DIR] (default build-fuzz).
# FUZZ_SECONDS (default 20) sets the time per target; FUZZ_SEED (default 1) fixes libFuzzer's
# random seed so a CI run replays a prefix of the input sequence a developer already ran longer
# (set FUZZ_SEED=0 for a fresh random seed when hunting).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${1:-${LOCO_FUZZ_DIR:-build-fuzz}}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
SEED="${FUZZ_SEED:-1}"
ARTIFACTS="${BUILD_DIR}/fuzz-artifacts"
mkdir -p "$ARTIFACTS"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

shopt -s nullglob
sources=(fuzz/fuzz_*.c)
if [ ${#sources[@]} -eq 0 ]; then
    echo "fuzz-smoke: no fuzz/fuzz_*.c targets"
    exit 0
fi

failed=()
for src in "${sources[@]}"; do
    name="$(basename "$src" .c)"
    bin="${BUILD_DIR}/${name}"
    if [ ! -x "$bin" ]; then
        echo "fuzz-smoke: ${bin} was not built" >&2
        failed+=("$name (not built)")
        continue
    fi
    corpus="${SCRATCH}/${name}"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/${name}" ]; then
        cp -R "fuzz/corpus/${name}/." "$corpus/"
    fi
    seeds=$(find "$corpus" -type f | wc -l)
    echo "--- ${name}: ${SECONDS_PER_TARGET}s from ${seeds} seed(s)"
    log="${ARTIFACTS}/${name}.log"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: runaway growth.
    if "$bin" -seed="$SEED" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="${ARTIFACTS}/${name}-" \
        "$corpus" >"$log" 2>&1 </dev/null; then
        grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "$log" | tr '\n' ' '
        echo
    else
        echo "fuzz-smoke: ${name} FAILED; last lines of ${log}:" >&2
        tail -n 40 "$log" >&2
        ls -1 "${ARTIFACTS}/${name}-"* 2>/dev/null | sed 's/^/  reproducer: /' >&2 || true
        failed+=("$name")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz-smoke: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: ${#sources[@]} target(s) ok"
