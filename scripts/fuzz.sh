#!/usr/bin/env bash
# Builds each fuzz target with libFuzzer and AddressSanitizer and runs it for a bounded time.
#
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_TARGETS   space-separated targets (default: all three)
#
# Seeds come from fuzz/seed.py (published ARM examples, real provider IDs, framed requests).
# New coverage lands in .build/fuzz-corpus/<target>; at the end it is merged into fuzz/<target>
# keeping only inputs that add coverage, so the committed corpus stays small. A crash or a broken
# promise is saved as fuzz/<target>/crash-<sha1>, which `swift test` (FuzzRegressionTests) then
# replays for ever; the script exits 1 if any target found one.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-FuzzProviderID FuzzARMDecoder FuzzGRPCMessage}
scratch=.build/fuzz
flags=(-c debug --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address
    -Xswiftc -parse-as-library -Xswiftc -DFUZZING)

python3 fuzz/seed.py || exit 1
failed=0
summary=()
for target in $targets; do
    echo "== building $target"
    if ! swift build "${flags[@]}" --product "$target" 2>&1 | grep -v "ld.gold: warning"; then
        echo "build of $target failed" >&2
        exit 1
    fi
    binary="$scratch/debug/$target"
    work=.build/fuzz-corpus/$target
    mkdir -p "$work" "fuzz/$target"
    log=.build/fuzz-corpus/$target.log
    echo "== fuzzing $target for ${seconds}s"
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$binary" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="fuzz/$target/" "$work" "fuzz/$target" >"$log" 2>&1
    status=$?
    grep -E "^(stat::|Done|==[0-9]+==ERROR|SUMMARY|.*Fatal error)" "$log" | head -20
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if ((status != 0)); then
        failed=1
        echo "$target FAILED (exit $status); see $log and fuzz/$target/crash-*" >&2
        tail -30 "$log" >&2
    fi
    # Minimize: keep the seeds, the regression inputs (regress-*, crash-*) and the smallest set
    # of other inputs (cov-<sha1>) that covers what everything found so far covers.
    merged=$(mktemp -d)
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$binary" -merge=1 -max_len=65536 -artifact_prefix="$merged/" \
        "$merged" "fuzz/$target" "$work" >>"$log" 2>&1
    declare -A kept=()
    for file in "fuzz/$target"/seed-* "fuzz/$target"/regress-* "fuzz/$target"/crash-*; do
        [[ -e $file ]] && kept[$(sha1sum <"$file" | cut -c1-40)]=1
    done
    rm -f "fuzz/$target"/cov-*
    added=0
    for file in "$merged"/*; do
        [[ -e $file ]] || continue
        name=$(basename "$file")
        [[ -n ${kept[$name]:-} ]] && continue
        cp "$file" "fuzz/$target/cov-$name"
        added=$((added + 1))
    done
    unset kept
    rm -rf "$merged"
    summary+=("$target: ${execs:-?} execs, ${speed:-?} execs/s, exit $status, $added coverage inputs kept")
done
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit $failed
