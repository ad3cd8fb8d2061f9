#!/usr/bin/env bash
# Builds easel and runs every test; then rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer
# and runs under them the parser tests (safetensors, images: truncated, corrupt and hostile files)
# and the server's hostile-client tests (10,000 fuzzed requests, validation).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
python3 tests/clients/test_clients.py  # webuiapi + openai SDK against build/easel serve (own venv, stops its servers)
python3 tests/load/test_kill_restart.py  # 50 jobs, 10 clients, 200 pollers; the server SIGKILLed midway and restarted
python3 tests/browser/test_ui.py --easel build/easel  # the web UI in headless chromium; prints its screenshots

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEASEL_SANITIZE=ON -DEASEL_BUILD_BENCH=OFF
cmake --build build-asan -j "$jobs" --target easel_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  build-asan/tests/easel_tests --gtest_filter='Parser*:ServerFuzz*:ServerValidation*' --gtest_brief=1
