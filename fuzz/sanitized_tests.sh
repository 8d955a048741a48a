#!/usr/bin/env bash
# Build the C extensions with AddressSanitizer + UndefinedBehaviorSanitizer in a copy of the
# checkout and run the tests that feed them untrusted bytes (property tests, damaged captures,
# truncations, tunnels, fragments, the whole corpus) against that build. Usage:
#   bash fuzz/sanitized_tests.sh [pytest args...]     (default: the test files below)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the copy sits beside the checkout's parent layout so tests still find ../shared/corpus
mkdir -p "$work/repo"
git ls-files -z | xargs -0 cp --parents -t "$work/repo"
ln -s "$(cd .. && pwd)/shared" "$work/shared" 2>/dev/null || true
cd "$work/repo"
FLOWKIT_SANITIZE=1 python setup.py build_ext --inplace -q 2>&1 | grep -v -E "^(warning|  warnings)" || true
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(tests/test_decode_fast_truncation.py tests/test_capture_damage.py tests/test_capture_boundaries.py
         tests/test_decode_tunnels.py tests/test_decode_reassembly.py tests/test_decode_link_extra.py
         tests/test_decode_fast_corpus.py tests/test_fuzz_regressions.py
         "tests/test_engines_diff.py::test_fast_and_dpkt_agree_on_any_bytes"
         "tests/test_engines_diff.py::test_fast_and_dpkt_agree_on_structured_random_packets"
         "tests/test_engines_diff.py::test_fast_and_dpkt_identical_on_corpus")
fi
# Python itself is not instrumented: preload the runtimes; its own allocations are not leaks to report
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONMALLOC=malloc  # every Python allocation through malloc, so ASan sees them too
python -m pytest -q -p no:cacheprovider "${tests[@]}"
