#!/usr/bin/env bash
# scripts/install.sh: install loco's build dependencies (apt-get on Debian/Ubuntu, Homebrew on
# macOS), build a Release binary into build/ and install it as PREFIX/bin/loco, with its man
# page, bash and zsh completions (generated from the commands' help), the query files of
# data/queries and .env.example. Safe to run again.
# Environment: PREFIX (/usr/local), LOCO_BUILD_DIR (build), JOBS (2), LOCO_SKIP_DEPS=1 (no
# package manager), LOCO_BIN (install this binary instead of building one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
PREFIX="${PREFIX:-/usr/local}"
JOBS="${JOBS:-2}"
BUILD_DIR="${LOCO_BUILD_DIR:-build}"
# A prefix the user owns needs no sudo.
if [ -n "$SUDO" ] && mkdir -p "$PREFIX" 2>/dev/null && [ -w "$PREFIX" ]; then
    INSTALL_SUDO=""
else
    INSTALL_SUDO="$SUDO"
fi

if [ "${LOCO_SKIP_DEPS:-0}" = "1" ]; then
    echo "==> LOCO_SKIP_DEPS=1: not installing build dependencies"
elif [ "$(uname -s)" = "Darwin" ]; then
    echo "==> installing build dependencies (Homebrew)"
    brew install cmake pkg-config curl libmicrohttpd jansson pcre2 cmocka
else
    echo "==> installing build dependencies (apt-get)"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends \
        build-essential cmake pkg-config ca-certificates \
        libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev libpcre2-dev libcmocka-dev \
        </dev/null
fi

if [ -n "${LOCO_BIN:-}" ]; then
    BIN="$LOCO_BIN"
    echo "==> installing ${BIN} (LOCO_BIN; not building)"
else
    echo "==> building loco (Release) in ${BUILD_DIR}/"
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLOCO_SANITIZE=OFF -DLOCO_FUZZ=OFF \
        -DCMAKE_INSTALL_PREFIX="$PREFIX"
    cmake --build "$BUILD_DIR" -j"$JOBS" --target loco
    BIN="${BUILD_DIR}/loco"
fi

echo "==> installing into ${PREFIX}"
SHARE="${PREFIX}/share"
$INSTALL_SUDO install -d "${PREFIX}/bin" "${SHARE}/loco/queries" "${SHARE}/man/man1" \
    "${SHARE}/bash-completion/completions" "${SHARE}/zsh/site-functions" "${SHARE}/doc/loco"
$INSTALL_SUDO install -m 0755 "$BIN" "${PREFIX}/bin/loco"
$INSTALL_SUDO install -m 0644 data/queries/*-queries.txt data/queries/README.md \
    "${SHARE}/loco/queries/"
$INSTALL_SUDO install -m 0644 .env.example "${SHARE}/doc/loco/env.example"
# generated from the installed binary's own help, so they always match it
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"${PREFIX}/bin/loco" help --man >"$TMP/loco.1"
"${PREFIX}/bin/loco" completion bash >"$TMP/loco.bash"
"${PREFIX}/bin/loco" completion zsh >"$TMP/_loco"
$INSTALL_SUDO install -m 0644 "$TMP/loco.1" "${SHARE}/man/man1/loco.1"
$INSTALL_SUDO install -m 0644 "$TMP/loco.bash" "${SHARE}/bash-completion/completions/loco"
$INSTALL_SUDO install -m 0644 "$TMP/_loco" "${SHARE}/zsh/site-functions/_loco"
echo "==> done: $("${PREFIX}/bin/loco" --version 2>/dev/null | head -1)"
echo "    man loco; completions for bash and zsh; queries in ${SHARE}/loco/queries"
