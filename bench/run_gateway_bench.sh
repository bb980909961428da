#!/usr/bin/env bash
# run_gateway_bench.sh: throughput and added latency of `loco serve` against the anchor,
# the seed's scripts/proxy.py, on the local route (haiku model, answer = text + one tool
# call), both behind the same C stand-in model server. Not a test; see bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
OUT=${OUT:-$ROOT/bench/out}
PYTHON=${PYTHON:-/usr/bin/python3}          # Debian's, with python3-httpx and python3-dotenv
PROXY_PY=${PROXY_PY:-}                      # the seed's scripts/proxy.py (found below if unset)
SEED_GIT=${SEED_GIT:-/work/.mirror/LocoreMind+LocoOperator/repo}
TARGETS=${TARGETS:-"proxy loco"}            # gateways to measure (the stand-in always is)
CONCS=${CONCS:-"1 8 64"}
STREAMS=${STREAMS:-"false true"}
REQUESTS=${REQUESTS:-4000}                  # per cell, after the warm-up
DURATION=${DURATION:-5}                     # seconds cap per cell
WARMUP=${WARMUP:-100}
TIMEOUT=${TIMEOUT:-10}                      # seconds per request (proxy.py drops connections at 64)
LOCO_PORT=${LOCO_PORT:-9092}
STRICT=${STRICT:-0}                         # 1: exit 1 when a goal fails
STANDIN_PORT=8080                           # both fixed by proxy.py
PROXY_PORT=9091
FIXTURE=$ROOT/tests/data/claude_code/explore_subagent_tool_result.json

mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"
PIDS=()
WORK=$(mktemp -d /tmp/loco-bench.XXXXXX)

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '%s\n' "$*" >&2; }
die() { say "run_gateway_bench: $*"; exit 2; }

# ---------------------------------------------------------------- build
# Release build of the stand-in, the load generator and loco. While some library does
# not compile, the two bench programs are built directly against libloco_base.
build() {
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOCO_TESTS=OFF >/dev/null
    if ! cmake --build "$BUILD" -j2 --target standin loadgen >"$OUT/build.log" 2>&1; then
        say "bench programs did not build with all libraries (see $OUT/build.log); building them alone"
        cmake --build "$BUILD" -j2 --target loco_base >>"$OUT/build.log" 2>&1 || die "libloco_base does not build"
        local p
        for p in standin loadgen; do
            # shellcheck disable=SC2046
            cc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$ROOT/src" "$ROOT/bench/$p.c" \
                -o "$BUILD/$p" "$BUILD/libloco_base.a" \
                $(pkg-config --cflags --libs libcurl libmicrohttpd jansson) -lpthread -lm ||
                die "cannot build bench/$p.c"
        done
    fi
    if [[ " $TARGETS " == *" loco "* && -z "${LOCO_BIN:-}" ]]; then
        if cmake --build "$BUILD" -j2 --target loco >>"$OUT/build.log" 2>&1; then
            LOCO_BIN=$BUILD/loco
        else
            say "loco does not build yet (see $OUT/build.log): measuring proxy.py only"
            TARGETS=${TARGETS//loco/}
        fi
    fi
}

# ---------------------------------------------------------------- helpers
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_health() { # url pid
    local _
    for _ in $(seq 1 100); do
        if curl -sf -o /dev/null --max-time 1 "$1"; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

stop() { # pid
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# Request bodies: the Anthropic request is a trimmed real Claude Code Explore request
# (haiku model, tools, a tool_use/tool_result turn); the OpenAI one, for measuring the
# stand-in directly, is what a gateway sends it (training prompt + rendered turns).
make_bodies() {
    "$PYTHON" - "$FIXTURE" "$ROOT/prompts/local_system.txt" "$WORK" <<'EOF'
import json, sys
fixture, prompt_path, out = sys.argv[1:4]
body = json.load(open(fixture))["body"]
try:
    prompt = open(prompt_path).read()
except OSError:
    prompt = "You are a Claude agent, built on Anthropic's Claude Agent SDK."
def text(c):
    if isinstance(c, str):
        return c
    parts = []
    for b in c:
        if b.get("type") == "text":
            parts.append(b["text"])
        elif b.get("type") == "tool_use":
            parts.append("<tool_call>\n" + json.dumps({"name": b["name"], "arguments": b["input"]}) + "\n</tool_call>")
        elif b.get("type") == "tool_result":
            parts.append("<tool_response>\n" + text(b.get("content", "")) + "\n</tool_response>")
    return "\n".join(parts)
for stream in (False, True):
    a = dict(body, stream=stream)
    json.dump(a, open(f"{out}/anthropic_{str(stream).lower()}.json", "w"))
    msgs = [{"role": "system", "content": prompt}]
    msgs += [{"role": m["role"], "content": text(m["content"])} for m in body["messages"]]
    o = {"model": "loco-operator-4b", "messages": msgs, "max_tokens": 32000, "temperature": 0.7, "stream": stream}
    json.dump(o, open(f"{out}/openai_{str(stream).lower()}.json", "w"))
EOF
}

# run_cells TARGET URL BODY_PREFIX EXPECT_STREAM EXPECT_PLAIN [extra loadgen args]
run_cells() {
    local target=$1 url=$2 prefix=$3 exp_s=$4 exp_p=$5
    shift 5
    local s c exp line
    for s in $STREAMS; do
        for c in $CONCS; do
            if [[ $s == true ]]; then exp=$exp_s; else exp=$exp_p; fi
            # proxy.py still works off connections queued by the previous cell
            if [[ $target == proxy ]]; then sleep 1; fi
            line=$("$BUILD/loadgen" --url "$url" --body "$WORK/${prefix}_$s.json" \
                --concurrency "$c" --requests "$REQUESTS" --duration "$DURATION" \
                --warmup "$WARMUP" --timeout "$TIMEOUT" --expect "$exp" --label "$target" "$@" \
                2>>"$OUT/loadgen.err" || true)
            [[ -n $line ]] || line="label=$target concurrency=$c ok=0 errors=$REQUESTS rps=0 p50_us=0 p99_us=0"
            say "  $target stream=$s $line"
            printf 'target=%s stream=%s %s\n' "$target" "$s" "$line" >>"$RESULTS"
        done
    done
}

ANTHROPIC_HEADERS=(--header "anthropic-version: 2023-06-01" --header "x-api-key: bench")

bench_proxy() {
    if [[ -z $PROXY_PY ]]; then
        if [[ -d $SEED_GIT ]] && git -C "$SEED_GIT" show HEAD:scripts/proxy.py >"$WORK/proxy.py.tmp" 2>/dev/null; then
            PROXY_PY=$WORK/proxy.py.tmp
        else
            say "no proxy.py (set PROXY_PY=/path/to/seed/scripts/proxy.py): skipping the anchor"
            return
        fi
    fi
    "$PYTHON" -c 'import httpx, dotenv' 2>/dev/null || die "$PYTHON lacks httpx/dotenv (apt-get install python3-httpx python3-dotenv)"
    port_busy $PROXY_PORT && die "port $PROXY_PORT is taken; proxy.py needs it"
    # Unmodified copy; it reads ../.env relative to itself, so give it an empty tree.
    mkdir -p "$WORK/seed/scripts"
    cp "$PROXY_PY" "$WORK/seed/scripts/proxy.py"
    (cd "$WORK/seed" && exec env -u OPENROUTER_API_KEY "$PYTHON" scripts/proxy.py) >"$OUT/proxy.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_health "http://127.0.0.1:$PROXY_PORT/health" "$pid" || die "proxy.py did not start (see $OUT/proxy.log)"
    say "proxy.py (pid $pid) on :$PROXY_PORT"
    run_cells proxy "http://127.0.0.1:$PROXY_PORT/v1/messages" anthropic toolu_ toolu_ "${ANTHROPIC_HEADERS[@]}"
    stop "$pid"
}

bench_loco() {
    [[ -x ${LOCO_BIN:-} ]] || { say "no loco binary: skipping loco"; return; }
    port_busy "$LOCO_PORT" && die "port $LOCO_PORT is taken (set LOCO_PORT)"
    (cd "$WORK" && exec "$LOCO_BIN" serve --listen "127.0.0.1:$LOCO_PORT" \
        --local-url "http://127.0.0.1:$STANDIN_PORT" --cloud-url "http://127.0.0.1:9" \
        --cloud-key-env LOCO_BENCH_NO_KEY) >"$OUT/loco.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_health "http://127.0.0.1:$LOCO_PORT/health" "$pid" || die "loco serve did not start (see $OUT/loco.log)"
    say "loco serve (pid $pid) on :$LOCO_PORT"
    run_cells loco "http://127.0.0.1:$LOCO_PORT/v1/messages?beta=true" anthropic toolu_ toolu_ "${ANTHROPIC_HEADERS[@]}"
    stop "$pid"
}

# ---------------------------------------------------------------- main
build
make_bodies
: >"$OUT/loadgen.err"
port_busy $STANDIN_PORT && die "port $STANDIN_PORT is taken; the stand-in must listen there (proxy.py's fixed upstream)"
"$BUILD/standin" --port $STANDIN_PORT 2>"$OUT/standin.log" &
STANDIN_PID=$!
PIDS+=("$STANDIN_PID")
wait_health "http://127.0.0.1:$STANDIN_PORT/health" "$STANDIN_PID" || die "stand-in did not start"

say "machine: $(nproc) cores; loco $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); $REQUESTS requests or ${DURATION}s per cell"
say "direct stand-in"
run_cells direct "http://127.0.0.1:$STANDIN_PORT/v1/chat/completions" openai '[DONE]' tool_call
for t in $TARGETS; do
    case $t in
    proxy) bench_proxy ;;
    loco) bench_loco ;;
    *) die "unknown target $t" ;;
    esac
done

# The table: per cell, each gateway's requests/s and latency, and its added latency
# (its percentile minus the stand-in's own, measured in the same run).
awk -v strict="$STRICT" '
function get(line, key,   r) { if (match(line, "(^| )" key "=[^ ]*")) { r = substr(line, RSTART, RLENGTH); sub(/^ /, "", r); sub(/^[^=]*=/, "", r); return r } return "" }
function ms(us) { return sprintf("%.3f", us / 1000) }
{
    t = get($0, "target"); s = get($0, "stream"); c = get($0, "concurrency"); k = t SUBSEP s SUBSEP c
    have[t] = 1; rps[k] = get($0, "rps") + 0; p50[k] = get($0, "p50_us") + 0; p99[k] = get($0, "p99_us") + 0
    err[k] = get($0, "errors") + 0; ok[k] = get($0, "ok") + 0
    if (!(s in seen_s)) { seen_s[s] = 1; ss[++ns] = s }
    if (!(c in seen_c)) { seen_c[c] = 1; cc[++nc] = c }
}
END {
    ng = 0; if ("proxy" in have) g[++ng] = "proxy"; if ("loco" in have) g[++ng] = "loco"
    printf "\n%-6s %4s | %-27s", "stream", "conc", "stand-in direct: rps p50 p99"
    for (i = 1; i <= ng; i++) printf " | %-44s", (g[i] == "proxy" ? "proxy.py" : "loco") ": rps p50 p99 +p50 +p99 (ms) err"
    if (ng == 2) printf " | loco/proxy rps"
    printf "\n"
    for (a = 1; a <= ns; a++) for (b = 1; b <= nc; b++) {
        s = ss[a]; c = cc[b]; d = "direct" SUBSEP s SUBSEP c
        printf "%-6s %4s | %8.0f %8s %8s  ", s, c, rps[d], ms(p50[d]), ms(p99[d])
        for (i = 1; i <= ng; i++) {
            k = g[i] SUBSEP s SUBSEP c
            printf " | %8.0f %7s %7s %7s %7s %4d", rps[k], ms(p50[k]), ms(p99[k]), ms(p50[k] - p50[d]), ms(p99[k] - p99[d]), err[k]
        }
        if (ng == 2) { pk = "proxy" SUBSEP s SUBSEP c; lk = "loco" SUBSEP s SUBSEP c
            printf " | %8.1fx", (rps[pk] > 0 ? rps[lk] / rps[pk] : 0) }
        printf "\n"
    }
    printf "\nGoals (issue 2):\n"
    fail = 0
    if (!("loco" in have) || !("proxy" in have)) {
        printf "  not judged: needs both loco and proxy.py figures\n"
    } else {
        for (a = 1; a <= ns; a++) {
            s = ss[a]; pk = "proxy" SUBSEP s SUBSEP 8; lk = "loco" SUBSEP s SUBSEP 8
            r = rps[pk] > 0 ? rps[lk] / rps[pk] : 0
            okr = (r >= 20 && err[lk] == 0); if (!okr) fail = 1
            printf "  stream=%-5s concurrency 8: loco %.0f rps = %.1fx proxy.py (goal >= 20x): %s\n", s, rps[lk], r, okr ? "HOLDS" : "FAILS"
        }
    }
    if ("loco" in have) {
        for (a = 1; a <= ns; a++) {
            s = ss[a]; lk = "loco" SUBSEP s SUBSEP 1; d = "direct" SUBSEP s SUBSEP 1
            add = p50[lk] - p50[d]; okl = (add < 1000 && ok[lk] > 0); if (!okl) fail = 1
            printf "  stream=%-5s concurrency 1: loco added median latency %.3f ms (goal < 1 ms): %s\n", s, add / 1000, okl ? "HOLDS" : "FAILS"
        }
    }
    exit (strict == 1 && fail) ? 1 : 0
}' "$RESULTS" | tee "$OUT/table.txt"
