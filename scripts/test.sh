#!/usr/bin/env bash
# Runs every test of sglang.cpp: builds (if needed), then the GoogleTest unit suites through
# ctest, then the end-to-end pytest suites under tests/e2e (against the real binaries and the
# default model). With --sanitize (or SGL_TEST_SANITIZE=1, the default under CI) it also builds
# the unit tests with AddressSanitizer + UndefinedBehaviorSanitizer and runs the suites that parse
# untrusted input (model files, tokenizers, templates) there, and replays the committed fuzz
# corpus (tests/fuzz/corpus) through the fuzz harnesses built as plain sanitizer binaries.
# Exit status is non-zero if anything fails.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="$(nproc)"
SANITIZE="${SGL_TEST_SANITIZE:-${CI:-0}}"
[ "$SANITIZE" = "true" ] && SANITIZE=1
for arg in "$@"; do
  case "$arg" in
    --sanitize) SANITIZE=1 ;;
    --no-sanitize) SANITIZE=0 ;;
    *) echo "test.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

log() { printf '\033[1m[test]\033[0m %s\n' "$*"; }
status=0

log "building (Release, build/)"
cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
ninja -C "$ROOT/build" -j"$JOBS" >/tmp/sgl-build.log 2>&1 || { tail -n 60 /tmp/sgl-build.log; exit 1; }

log "unit tests (ctest)"
(cd "$ROOT/build" && ctest --output-on-failure -j"$JOBS" --timeout 600) || status=1

if [ "$SANITIZE" = 1 ]; then
  log "unit tests under AddressSanitizer + UBSan (build-asan/: model, tokenizer, support, grammar, server, lang)"
  cmake -S "$ROOT" -B "$ROOT/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSGL_SANITIZE=ON \
    >/dev/null || exit 1
  targets=()
  for t in test_support test_model test_tokenizer test_grammar test_server test_lang; do
    [ -d "$ROOT/tests/unit/${t#test_}" ] && targets+=("$t")
  done
  # The fuzz harnesses as corpus replayers (tests/fuzz/replay_main.cpp): every committed corpus
  # input and crash regression runs once under ASan + UBSan (scripts/fuzz.sh does the fuzzing).
  fuzzers=()
  for f in "$ROOT"/tests/fuzz/fuzz_*.cpp; do [ -f "$f" ] && fuzzers+=("$(basename "$f" .cpp)"); done
  ninja -C "$ROOT/build-asan" -j"$JOBS" "${targets[@]}" "${fuzzers[@]}" >/tmp/sgl-build-asan.log 2>&1 \
    || { tail -n 60 /tmp/sgl-build-asan.log; exit 1; }
  for t in "${targets[@]}"; do
    filter="*"
    [ "$t" = test_lang ] && filter="Lang.*"  # the interpreter; its model run is too slow unoptimized
    ASAN_OPTIONS=detect_leaks=1 "$ROOT/build-asan/bin/$t" --gtest_brief=1 --gtest_filter="$filter" \
      || status=1
  done
  log "fuzz corpus replay under AddressSanitizer + UBSan (tests/fuzz/corpus)"
  for t in "${fuzzers[@]}"; do
    ASAN_OPTIONS=detect_leaks=1 "$ROOT/build-asan/bin/$t" "$ROOT/tests/fuzz/corpus/$t" || status=1
  done
fi

if command -v nvcc >/dev/null 2>&1; then
  # The CUDA backend compiles (build-cuda/, only the library and test_cuda); test_cuda runs and
  # skips its GPU tests where there is no GPU. GPU runs: tests/cuda/run_device.sh, docs/cuda.md.
  log "CUDA backend (build-cuda/: sgl with -DSGL_CUDA=ON, test_cuda)"
  cmake -S "$ROOT" -B "$ROOT/build-cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSGL_CUDA=ON \
    >/dev/null || exit 1
  ninja -C "$ROOT/build-cuda" -j"$JOBS" test_cuda >/tmp/sgl-build-cuda.log 2>&1 \
    || { tail -n 60 /tmp/sgl-build-cuda.log; exit 1; }
  "$ROOT/build-cuda/bin/test_cuda" --gtest_brief=1 || status=1
fi

if compgen -G "$ROOT/tests/e2e/test_*.py" >/dev/null; then
  log "end-to-end tests (pytest tests/e2e)"
  python3 -m pytest -q "$ROOT/tests/e2e" || status=1
fi

if [ $status -eq 0 ]; then log "all tests passed"; else log "FAILURES (see above)"; fi
exit $status
