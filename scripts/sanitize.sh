#!/usr/bin/env bash
# Runs the Swift tests under AddressSanitizer, then ThreadSanitizer, each in its own build
# directory so neither disturbs the ordinary debug build. SANITIZE_FILTER narrows the tests
# (a `swift test --filter` pattern); SANITIZERS picks which to run (default "address thread").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
filter=()
if [[ -n "${SANITIZE_FILTER:-}" ]]; then
    filter=(--filter "$SANITIZE_FILTER")
fi
# Suppressions for faults outside this repository, each checked by hand:
# - LeakSanitizer: libcurl keeps per-handle allocations (URLSession's backend), Foundation's
#   Data(contentsOf:) leaks its 4 KiB read buffer and Process.run leaks a weak-reference side
#   table; none is reachable from this code.
# - ThreadSanitizer: Synchronization.Mutex locks with raw futex calls on Linux, which TSan does
#   not see, so two accesses inside withLock on different threads are reported as a race (a
#   12-line program with Mutex reproduces it; the same with NSLock is clean). Every report of a
#   full run (21, all in GRPCTransport) is the event loop's Mutex-guarded task queue or a client
#   call's fields, written by the caller and read on the loop after EventLoop.execute handed the
#   call over through that queue; those frames are listed, nothing else.
# - LeakSanitizer also lists XCTest's own suite objects, which live until exit.
suppressions=$(mktemp -d)
trap 'rm -rf "$suppressions"' EXIT
cat >"$suppressions/lsan.txt" <<'LSAN'
leak:libcurl.so
leak:readBytesFromFile
leak:Foundation7ProcessC3run
leak:libXCTest.so
LSAN
cat >"$suppressions/tsan.txt" <<'TSAN'
race:*EventLoopC7execute*
race:*EventLoopC8runTasks*
race:*EventLoopC10threadMain*
race:*ClientCoreC5start*
race:*clientReadRequest*
TSAN
status=0
for sanitizer in ${SANITIZERS:-address thread}; do
    scratch=.build/${sanitizer:0:1}san
    [[ $sanitizer == address ]] && scratch=.build/asan
    [[ $sanitizer == thread ]] && scratch=.build/tsan
    echo "== swift test --sanitize=$sanitizer (build in $scratch)"
    # halt_on_error makes the first report fail the run; leaks are reported by ASan at exit.
    # --no-parallel: the suites hold timing expectations (a 100 ms deadline must fire within
    # 390 ms) that an instrumented build running every suite at once on two cores cannot keep.
    if ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
        LSAN_OPTIONS=suppressions=$suppressions/lsan.txt:print_suppressions=0 \
        TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$suppressions/tsan.txt \
        swift test --no-parallel --scratch-path "$scratch" --sanitize="$sanitizer" \
        ${filter[@]+"${filter[@]}"} \
        2>&1 | tee ".build/sanitize-$sanitizer.log" | grep -v "ld.gold: warning"; then
        echo "== $sanitizer: clean"
    else
        echo "== $sanitizer: FAILED (see .build/sanitize-$sanitizer.log)" >&2
        status=1
    fi
done
exit $status
