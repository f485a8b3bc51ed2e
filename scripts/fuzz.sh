#!/usr/bin/env bash
# Fuzzes every target of Fuzz/ (or those named) with libFuzzer for FUZZ_SECONDS each (default 60) and prints one
# line per target: name, runs, coverage (edges), features, corpus, result. A crash, hang or leak is copied to
# Fuzz/Regressions/<target>/ (the test suite replays it: fix, then commit it) and fails the run.
#   scripts/fuzz.sh [--smoke] [TARGET...]    --smoke (CI): seed 1, 3,000 runs a target (FUZZ_SMOKE_RUNS), at most
#                                             FUZZ_SECONDS each (default 10 then)
# Then the record step's budget (10 ms, 10 MB a record): the corpus replayed in a release build without sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
seconds=${FUZZ_SECONDS:-60}
smoke=()
# The HTTP API's target needs the whole NIO and Hummingbird stack built with the sanitizers: not in the smoke run.
export TRIPLINE_FUZZ_HTTP=1
fuzzer=Fuzz/.build/fuzzer-http
all=(json ndjson record yaml watchlist rules condition phone email normalize name smtp-reply note audit-bundle ack-link http)
if [ "${1:-}" = "--smoke" ]; then
    seconds=${FUZZ_SECONDS:-10}
    export TRIPLINE_FUZZ_HTTP=0
    fuzzer=Fuzz/.build/fuzzer
    unset 'all[15]'
    # Reproducible in CI: a fixed seed and a fixed number of runs (from the seeds alone on a clean clone), the
    # time only a cap. A time-bounded run found a new input on CI and turned it red.
    smoke=(-seed=1 -runs="${FUZZ_SMOKE_RUNS:-3000}")
    shift
fi
# A build's output is shown only when it fails (and then fails the run: never a stale binary).
build() {
    local log
    log=$(mktemp)
    if ! swift build "$@" >"$log" 2>&1; then
        grep -Ev "^\[|unhandled|^Building|^Compiling|CMakeLists" "$log" >&2
        rm -f "$log"
        echo "fuzz: the build failed" >&2
        exit 1
    fi
    rm -f "$log"
}
build --package-path Fuzz -c release --product tripline-fuzz --scratch-path "$fuzzer" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
bin=$(swift build --package-path Fuzz -c release --scratch-path "$fuzzer" --show-bin-path)/tripline-fuzz
[ -x "$bin" ] || { echo "fuzz: the fuzzer did not build" >&2; exit 1; }

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
work=Fuzz/.work
mkdir -p "$work"
failed=0
printf '%-13s %10s %7s %7s %7s  %s\n' target runs cov ft corpus result
for t in "${targets[@]}"; do
    ln -sf "$(realpath "$bin")" "$work/fuzz-$t"
    read -r maxlen timeout < <(TRIPLINE_FUZZ_DESCRIBE=1 "$work/fuzz-$t")
    mkdir -p "$work/$t" "$work/artifacts/$t" "Fuzz/Corpus/$t" "Fuzz/Regressions/$t"
    dict=()
    [ -f "Fuzz/Dictionaries/$t.dict" ] && dict=(-dict="Fuzz/Dictionaries/$t.dict")
    log="$work/$t.log"
    start=$(date +%s)
    set +e
    ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 "$work/fuzz-$t" -max_total_time="$seconds" \
        -max_len="$maxlen" -timeout="$timeout" -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 "${smoke[@]}" \
        -artifact_prefix="$work/artifacts/$t/" "${dict[@]}" "$work/$t" "Fuzz/Corpus/$t" "Fuzz/Regressions/$t" \
        >"$log" 2>&1
    rc=$?
    set -e
    took=$(($(date +%s) - start))
    runs=$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo 0)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(echo "$last" | grep -Eo 'cov: [0-9]+' | grep -Eo '[0-9]+' || echo 0)
    ft=$(echo "$last" | grep -Eo 'ft: [0-9]+' | grep -Eo '[0-9]+' || echo 0)
    corp=$(echo "$last" | grep -Eo 'corp: [0-9]+' | grep -Eo '[0-9]+' || echo 0)
    if [ $rc -eq 0 ]; then
        result="ok (${took} s)"
    else
        failed=1
        kind=$(grep -Eo 'ERROR: libFuzzer: [a-z-]+|ERROR: AddressSanitizer: [a-z-]+|Fatal error: property failed|Fatal error' "$log" | head -1 || true)
        result="FAILED (${kind:-exit $rc}, ${took} s; log $log)"
        for a in "$work/artifacts/$t"/*; do
            [ -f "$a" ] || continue
            cp "$a" "Fuzz/Regressions/$t/$(basename "$a")"
            result="$result; input kept as Fuzz/Regressions/$t/$(basename "$a")"
            rm -f "$a"
        done
    fi
    printf '%-13s %10s %7s %7s %7s  %s\n' "$t" "$runs" "$cov" "$ft" "$corp" "$result"
done

# The record step's budget: release, no sanitizers, the corpus (seeds, what fuzzing found, regressions) replayed.
budget=Fuzz/.build/plain
TRIPLINE_FUZZ_HTTP=0 build --package-path Fuzz -c release --product fuzz-budget --scratch-path "$budget"
"$(TRIPLINE_FUZZ_HTTP=0 swift build --package-path Fuzz -c release --scratch-path "$budget" --show-bin-path)/fuzz-budget" \
    Fuzz/Corpus/record Fuzz/Regressions/record "$work/record" || failed=1
exit $failed
