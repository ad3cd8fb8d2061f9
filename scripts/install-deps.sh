#!/usr/bin/env bash
# Installs everything easel's build, tests and benchmarks need, from Debian bookworm packages only.
# Idempotent: packages already present are skipped, and apt is not touched when nothing is missing.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # CPU compute
  libdnnl-dev libhwy-dev
  # checkpoints, images, CLI
  nlohmann-json3-dev libcli11-dev libpng-dev libjpeg62-turbo-dev libwebp-dev zlib1g-dev
  # server: HTTP and WebSocket (Boost.Beast, header-only), persistent state
  libboost-dev libsqlite3-dev
  # text: tokenizer regexes and Unicode normalisation
  libpcre2-dev libutf8proc-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev python3
  # browser test of the web UI (tests/browser/test_ui.py drives headless chromium over DevTools)
  chromium chromium-driver
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
