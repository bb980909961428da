#!/usr/bin/env bash
# bench/run_grep_bench.sh: loco's Grep tool next to ripgrep (Debian package `ripgrep`, binary rg)
# on the same large tree, same thread count, same rules (hidden files searched, .git skipped,
# .gitignore honoured, binary files skipped). For each case: best-of-N wall time of each, the
# ratio, and a check that both found the same files (and, for count, the same total).
# A benchmark, not a test: nothing in CI runs it.
#
#   bench/run_grep_bench.sh                     # 3 copies of /usr/include (~400 MB), nproc threads
#   COPIES=1 THREADS=2 REPEAT=5 bench/run_grep_bench.sh
#
# The tree is built once in $TREE (deterministic: copies of /usr/include plus a .gitignore that
# hides one copy's linux/ directory) and kept between runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COPIES=${COPIES:-3}
THREADS=${THREADS:-$(nproc)}
REPEAT=${REPEAT:-3}
TREE=${TREE:-/tmp/loco_grep_bench_tree}
BUILD=${BUILD:-build-bench}
SRC=${SRC:-/usr/include}

command -v rg >/dev/null || { echo "ripgrep (rg) is needed: apt-get install ripgrep" >&2; exit 1; }

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOCO_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target tool_grep >/dev/null
DRIVER="$BUILD/tool_grep"

if [ ! -f "$TREE/.built-$COPIES" ]; then
  rm -rf "$TREE"
  mkdir -p "$TREE"
  for i in $(seq 1 "$COPIES"); do cp -r "$SRC" "$TREE/copy$i"; done
  printf '*.orig\n/copy1/linux/\n' > "$TREE/.gitignore"
  git -C "$TREE" init -q
  touch "$TREE/.built-$COPIES"
fi
TREE=$(realpath "$TREE")
echo "tree: $TREE ($(du -sh "$TREE" | cut -f1), $(find "$TREE" -type f | wc -l) files), threads $THREADS, best of $REPEAT"
echo "rg: $(rg --version 2>/dev/null | sed -n 1p)"

RG=(rg --no-config --hidden -g '!.git' -j "$THREADS")

# best wall time in ms of REPEAT runs of "$@" (output discarded)
best_ms() {
  local best=999999999 t0 t1 ms
  for _ in $(seq 1 "$REPEAT"); do
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    [ "$ms" -lt "$best" ] && best=$ms
  done
  echo "$best"
}

# name | mode | -i or - | pattern
CASES=(
  "literal, files|files_with_matches|-|PTHREAD_MUTEX_INITIALIZER"
  "literal, content|content|-|EXPORT_SYMBOL"
  "many lines, content|content|-|static inline"
  "regex, files|files_with_matches|-|[A-Z]{4,}_[A-Z]+_MAX\b"
  "regex, count|count|-|\w+_t\s+\*\w+\("
  "-i literal, count|count|-i|pthread_mutex"
  "-i regex, count|count|-i|mutex_(un)?lock"
  "rare, files|files_with_matches|-|zzqx_not_there"
)

printf '\n%-20s %10s %10s %8s  %s\n' "case" "rg ms" "loco ms" "rg/loco" "same results"
for c in "${CASES[@]}"; do
  IFS='|' read -r name mode flag pat <<<"$c"
  rgflags=()
  lflags=()
  if [ "$flag" = "-i" ]; then rgflags+=(-i); lflags+=(-i); fi
  case $mode in
    files_with_matches) rgmode=(-l) ;;
    content) rgmode=(-n) ;;
    count) rgmode=(-c) ;;
  esac
  t_rg=$(best_ms "${RG[@]}" "${rgflags[@]}" "${rgmode[@]}" -e "$pat" "$TREE")
  t_lo=$(best_ms "$DRIVER" "$TREE" "$pat" --mode "$mode" --threads "$THREADS" "${lflags[@]}")
  # same set of matching files
  "${RG[@]}" "${rgflags[@]}" -l -e "$pat" "$TREE" 2>/dev/null | sort > /tmp/grep_bench_rg.txt || true
  "$DRIVER" "$TREE" "$pat" --threads "$THREADS" "${lflags[@]}" --list | sed '/^$/d' | sort > /tmp/grep_bench_loco.txt
  same="yes ($(wc -l < /tmp/grep_bench_rg.txt) files)"
  if ! cmp -s /tmp/grep_bench_rg.txt /tmp/grep_bench_loco.txt; then
    same="NO: rg $(wc -l < /tmp/grep_bench_rg.txt) files, loco $(wc -l < /tmp/grep_bench_loco.txt)"
  fi
  if [ "$mode" = count ]; then
    rg_total=$("${RG[@]}" "${rgflags[@]}" -c -e "$pat" "$TREE" 2>/dev/null |
               awk -F: '{s += $NF; n++} END {print s + 0, n + 0}')
    lo_total=$("$DRIVER" "$TREE" "$pat" --threads "$THREADS" "${lflags[@]}" --total)
    if [ "$rg_total" = "$lo_total" ]; then same="$same, lines $rg_total"; else same="$same, lines rg $rg_total loco $lo_total"; fi
  fi
  ratio=$(awk -v a="$t_rg" -v b="$t_lo" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  printf '%-20s %10s %10s %8s  %s\n' "$name" "$t_rg" "$t_lo" "$ratio" "$same"
done
echo
echo "rg/loco >= 0.5 meets the goal (loco at least half of ripgrep's speed); > 1 means loco is faster."
