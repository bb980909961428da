#!/usr/bin/env bash
# scripts/fuzz-smoke.sh: run every libFuzzer target built from fuzz/fuzz_*.c for a short
# time on a scratch copy of its seeds in fuzz/corpus/<name>/; fails on any crash, leak,
# sanitizer report or timeout. Usage: scripts/fuzz-smoke.sh [BUILD_DIR] (default build-fuzz).
# FUZZ_SECONDS (default 20) sets the time per target; FUZZ_SEED (default 1) fixes libFuzzer's
# random seed so a CI run replays a prefix of the input sequence a developer already ran longer
# (set FUZZ_SEED=0 for a fresh random seed when hunting). FUZZ_JOBS (default JOBS, else 2)
# targets run at once, each single-threaded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${1:-${LOCO_FUZZ_DIR:-build-fuzz}}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
SEED="${FUZZ_SEED:-1}"
PARALLEL="${FUZZ_JOBS:-${JOBS:-2}}"
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

# One target: its result line on stdout (printed when all are done, in order) and "ok" or
# "failed" in ${ARTIFACTS}/NAME.status.
run_one() {
    local name="$1" bin="${BUILD_DIR}/$1" corpus="${SCRATCH}/$1" log="${ARTIFACTS}/$1.log"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/${name}" ]; then
        cp -R "fuzz/corpus/${name}/." "$corpus/"
    fi
    local seeds
    seeds=$(find "$corpus" -type f | wc -l)
    {
        echo "--- ${name}: ${SECONDS_PER_TARGET}s from ${seeds} seed(s)"
        # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: runaway growth.
        if "$bin" -seed="$SEED" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
            -max_len=65536 -print_final_stats=1 -artifact_prefix="${ARTIFACTS}/${name}-" \
            "$corpus" >"$log" 2>&1 </dev/null; then
            grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "$log" | tr '\n' ' '
            echo
            echo ok >"${ARTIFACTS}/${name}.status"
        else
            echo "fuzz-smoke: ${name} FAILED; last lines of ${log}:"
            tail -n 40 "$log"
            for r in "${ARTIFACTS}/${name}-"*; do
                echo "  reproducer: $r"
            done
            echo failed >"${ARTIFACTS}/${name}.status"
        fi
    } >"${SCRATCH}/${name}.out" 2>&1
}

failed=()
names=()
running=0
for src in "${sources[@]}"; do
    name="$(basename "$src" .c)"
    if [ ! -x "${BUILD_DIR}/${name}" ]; then
        echo "fuzz-smoke: ${BUILD_DIR}/${name} was not built" >&2
        failed+=("$name (not built)")
        continue
    fi
    rm -f "${ARTIFACTS}/${name}.status"
    names+=("$name")
    run_one "$name" &
    running=$((running + 1))
    if [ "$running" -ge "$PARALLEL" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true
for name in "${names[@]}"; do
    cat "${SCRATCH}/${name}.out"
    if [ "$(cat "${ARTIFACTS}/${name}.status" 2>/dev/null)" != ok ]; then
        failed+=("$name")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz-smoke: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: ${#sources[@]} target(s) ok"
