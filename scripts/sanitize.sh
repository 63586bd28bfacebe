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
status=0
for sanitizer in ${SANITIZERS:-address thread}; do
    scratch=.build/${sanitizer:0:1}san
    [[ $sanitizer == address ]] && scratch=.build/asan
    [[ $sanitizer == thread ]] && scratch=.build/tsan
    echo "== swift test --sanitize=$sanitizer (build in $scratch)"
    # halt_on_error makes the first report fail the run; leaks are reported by ASan at exit.
    if ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        swift test --scratch-path "$scratch" --sanitize="$sanitizer" ${filter[@]+"${filter[@]}"} \
        2>&1 | tee ".build/sanitize-$sanitizer.log" | grep -v "ld.gold: warning"; then
        echo "== $sanitizer: clean"
    else
        echo "== $sanitizer: FAILED (see .build/sanitize-$sanitizer.log)" >&2
        status=1
    fi
done
exit $status
