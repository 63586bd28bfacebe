#!/usr/bin/env bash
# Runs the Python tests against the built binaries. "No tests collected" (pytest's exit 5) is a
# failure: the tree has end-to-end tests, so collecting none means they were lost.
# Usage: scripts/pytest.sh [pytest arguments]   (default: tests/)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
config=${TEST_CONFIG:-debug}
export VMSSD_BIN=${VMSSD_BIN:-$root/.build/$config/vmssd}
export VMSSCTL_BIN=${VMSSCTL_BIN:-$root/.build/$config/vmssctl}
export INTEROPCLIENT_BIN=${INTEROPCLIENT_BIN:-$root/.build/go/interopclient}
export GOSERVER_BIN=${GOSERVER_BIN:-$root/.build/go/goserver}
export PYTHONDONTWRITEBYTECODE=1

if (($# == 0)); then
    set -- tests/
fi
python3 -m pytest -p no:cacheprovider "$@"
status=$?
if ((status == 5)); then
    echo "pytest: no tests collected" >&2
fi
exit $status
