#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp) with clang, ASan and UBSan in build-fuzz/
# and runs them one at a time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   fuzz each target for SECONDS (default 180), then merge
#                                           the new inputs into tests/fuzz/corpus/<target>/
#                                           (-merge=1: only inputs that add coverage are kept)
#   scripts/fuzz.sh --smoke [TARGET...]     run every committed corpus input once (-runs=0)
#
# Crashes, leaks, timeouts and out-of-memory inputs are saved as build-fuzz/artifacts/<target>/*;
# the exit status is non-zero if any target found one. Logs: build-fuzz/logs/<target>.log.
# Environment: FUZZ_JOBS (ninja -j, default 2), FUZZ_NICE (default 15), SGL_FUZZ_MODEL (the model
# whose tokenizer fuzz_tokenizer loads; default models/SmolLM2-135M-Instruct.Q4_1.gguf).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-fuzz"
CORPUS="$ROOT/tests/fuzz/corpus"
NICE="${FUZZ_NICE:-15}"
SECONDS_PER_TARGET=180
SMOKE=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    [0-9]*) SECONDS_PER_TARGET="$arg" ;;
    fuzz_*) targets+=("$arg") ;;
    *) echo "fuzz.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$ROOT"/tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

log() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found" >&2; exit 1; }
log "building ${targets[*]} (clang, ASan+UBSan+libFuzzer, $BUILD)"
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS=-gline-tables-only -DSGL_FUZZ=ON -DSGL_BUILD_TESTS=OFF >/dev/null || exit 1
nice -n 10 ninja -C "$BUILD" -j"${FUZZ_JOBS:-2}" "${targets[@]}" >"$BUILD/build.log" 2>&1 \
  || { tail -n 40 "$BUILD/build.log"; exit 1; }

# keep_corpus TARGET DIR: replaces the non-seed inputs of tests/fuzz/corpus/TARGET with the
# smallest inputs of DIR (a -merge=1 output), at most FUZZ_CORPUS_KB (default 100) KiB and
# FUZZ_CORPUS_FILES (default 150) files per target, so the committed corpus stays small; the
# whole merged corpus stays in build-fuzz/corpus/TARGET for the next local run.
keep_corpus() {
  local t="$1" dir="$2" budget=$(( ${FUZZ_CORPUS_KB:-100} * 1024 )) files=${FUZZ_CORPUS_FILES:-150}
  local seeds used=0 n=0 f size
  find "$CORPUS/$t" -type f ! -name 'seed_*' -delete
  seeds=$(for f in "$CORPUS/$t"/seed_*; do [ -f "$f" ] && sha1sum "$f" | cut -c1-40; done)
  while IFS= read -r f; do
    [ -f "$f" ] || continue
    grep -q "$(basename "$f")" <<<"$seeds" && continue
    size=$(stat -c %s "$f")
    [ $((used + size)) -gt "$budget" ] || [ "$n" -ge "$files" ] && break
    cp "$f" "$CORPUS/$t/"
    used=$((used + size)); n=$((n + 1))
  done < <(ls -1Sr "$dir" | sed "s|^|$dir/|")
}

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
mkdir -p "$BUILD/logs"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$CORPUS/$t" "$BUILD/artifacts/$t"
  max_len=8192
  [ "$t" = fuzz_gguf ] && max_len=32768
  common=(-rss_limit_mb=2048 -timeout=10 -max_len="$max_len"
          -artifact_prefix="$BUILD/artifacts/$t/")
  if [ "$SMOKE" = 1 ]; then
    n=$(find "$CORPUS/$t" -type f | wc -l)
    if "$BUILD/bin/$t" "${common[@]}" -runs=0 "$CORPUS/$t" >"$BUILD/logs/$t.log" 2>&1; then
      log "$t: $n corpus inputs ok"
    else
      log "$t: FAILED on its corpus (see $BUILD/logs/$t.log)"; tail -n 30 "$BUILD/logs/$t.log"
      status=1
    fi
    continue
  fi
  work="$BUILD/corpus/$t"
  mkdir -p "$work"
  start=$(date +%s)
  nice -n "$NICE" "$BUILD/bin/$t" "${common[@]}" -max_total_time="$SECONDS_PER_TARGET" \
    -print_final_stats=1 "$work" "$CORPUS/$t" >"$BUILD/logs/$t.log" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - start ))
  stats=$(grep -E '^#[0-9]+' "$BUILD/logs/$t.log" | tail -n 1)
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$BUILD/logs/$t.log" | grep -oE '[0-9]+$')
  if [ $rc -ne 0 ]; then
    log "$t: FOUND A PROBLEM after ${elapsed}s (exit $rc): $(ls "$BUILD/artifacts/$t")"
    grep -E 'ERROR|runtime error|fuzz invariant|SUMMARY' "$BUILD/logs/$t.log" | head -n 5
    status=1
  else
    log "$t: ${elapsed}s, ${runs:-?} runs, last: $stats"
  fi
  # Keep a minimized corpus in the repo: the seeds plus the merged inputs that add coverage.
  min="$BUILD/min/$t"
  rm -rf "$min"; mkdir -p "$min"
  nice -n "$NICE" "$BUILD/bin/$t" "${common[@]}" -merge=1 "$min" "$CORPUS/$t" "$work" \
    >>"$BUILD/logs/$t.log" 2>&1 || { log "$t: merge failed"; status=1; continue; }
  keep_corpus "$t" "$min"
  log "$t: corpus now $(find "$CORPUS/$t" -type f | wc -l) files, $(cat "$CORPUS/$t"/* | wc -c) bytes"
done
exit $status
