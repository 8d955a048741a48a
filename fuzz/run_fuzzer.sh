#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoder (fuzz/decode_fuzzer.c) with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer, for a bounded time. Usage:
#   bash fuzz/run_fuzzer.sh [SECONDS]      (default 120; needs clang)
# Seeds are built from the tests' packets (fuzz/make_seeds.py). A crash leaves its input in
# fuzz/crashes/ and fails the run: copy it to fuzz/regressions/ (tests/test_fuzz_regressions.py
# replays every file there through both engines) once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang not installed (apt-get install clang)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
inc=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
libdir=$(python -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
ver=$(python -c "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wno-unused-function \
  -I flowkit -I "$inc" fuzz/decode_fuzzer.c -L"$libdir" -lpython"$ver" -Wl,-rpath,"$libdir" -o "$work/decode_fuzzer"
python fuzz/make_seeds.py "$work/seeds" >/dev/null
cp fuzz/regressions/* "$work/seeds/" 2>/dev/null || true
mkdir -p "$work/corpus" fuzz/crashes
"$work/decode_fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
  -artifact_prefix=fuzz/crashes/ -print_final_stats=1 "$work/corpus" "$work/seeds" 2>"$work/log" || {
  tail -40 "$work/log" >&2
  echo "fuzz: crash; input saved in fuzz/crashes/" >&2
  exit 1
}
grep -E "^stat::number_of_executed_units|^stat::new_units_added|cov:" "$work/log" | tail -3
echo "fuzz: ${seconds}s, no crash"
