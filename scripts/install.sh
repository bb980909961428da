#!/usr/bin/env bash
# scripts/install.sh: install loco's build dependencies (Debian 12), build a Release
# binary into build/ and install it as /usr/local/bin/loco. Safe to run again.
# Environment: PREFIX (/usr/local), LOCO_BUILD_DIR (build), JOBS (2).
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

echo "==> installing build dependencies (apt-get)"
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    build-essential cmake pkg-config ca-certificates \
    libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev libpcre2-dev libcmocka-dev \
    </dev/null

echo "==> building loco (Release) in ${BUILD_DIR}/"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLOCO_SANITIZE=OFF -DLOCO_FUZZ=OFF
cmake --build "$BUILD_DIR" -j"$JOBS" --target loco

echo "==> installing ${PREFIX}/bin/loco"
$SUDO install -d "${PREFIX}/bin"
$SUDO install -m 0755 "${BUILD_DIR}/loco" "${PREFIX}/bin/loco"
echo "==> done: $("${PREFIX}/bin/loco" --version 2>/dev/null || echo "${PREFIX}/bin/loco")"
