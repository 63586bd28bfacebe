#!/usr/bin/env bash
# Runs the grpc-go interop checks against benchmarks/goserver, the grpc-go reference server, to
# show that the checks themselves pass against a conforming peer (and so that a failure against
# vmssd points at vmssd). Expects .build/go/goserver and .build/go/interopclient to be built.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
socket="$work/goserver.sock"
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$root/.build/go/goserver" -socket "$socket" -vms 200 -slow-delay 5s >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    [[ -S "$socket" ]] && break
    sleep 0.05
done
[[ -S "$socket" ]] || { cat "$work/server.log"; echo "goserver did not start" >&2; exit 1; }

prefix="azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench-rg"
prefix="$prefix/providers/Microsoft.Compute/virtualMachineScaleSets"
cat >"$work/expect.json" <<JSON
{
  "exists": ["$prefix/bench-pool-000/virtualMachines/0", "$prefix/bench-pool-001/virtualMachines/9"],
  "gone": ["$prefix/bench-pool-000/virtualMachines/49", "$prefix/no-such-pool/virtualMachines/0"],
  "shutdown": ["$prefix/bench-pool-000/virtualMachines/9"],
  "running": ["$prefix/bench-pool-000/virtualMachines/1", "$prefix/bench-pool-000/virtualMachines/49"],
  "not_found_metadata": ["$prefix/bench-pool-000/virtualMachines/49"],
  "metadata": [{
    "node_name": "bench-pool-000000000",
    "provider_id": "$prefix/bench-pool-000/virtualMachines/0",
    "instance_type": "Standard_D4s_v5", "zone": "westeurope-1", "region": "westeurope",
    "node_addresses": [{"type": "InternalIP", "address": "10.1.0.4"},
                       {"type": "Hostname", "address": "bench-pool-000000000"}]
  }],
  "slow": "$prefix/slow-pool/virtualMachines/0"
}
JSON

"$root/.build/go/interopclient" -socket "$socket" -expect "$work/expect.json"
# The :authority some clients send over a Unix socket: the raw path, slashes and all.
"$root/.build/go/interopclient" -socket "$socket" -authority "$socket" -expect - \
    -skip deadline-exceeded,oversized-request-resource-exhausted <"$work/expect.json" | tail -1
