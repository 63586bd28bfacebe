#!/usr/bin/env bash
# The scripted demonstration: a VM scale set is deleted under live Nodes, and the cloud
# controller's polling of those Nodes is answered from one cached 404 instead of one ARM listing
# per question. Runs the fake Azure and vmssd on loopback with a compressed clock (the
# controller's 5 s poll becomes 0.5 s; TTLs are seconds, not minutes), prints what a controller
# would see, and compares the ARM requests made with those of a provider without a negative
# cache. Exits 0 when every Node ends up answered false; cleans up after itself.
# Usage: scripts/demo.sh   (VMSSD_BIN / VMSSCTL_BIN override the binaries; release by default)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
vmssd=${VMSSD_BIN:-$root/.build/release/vmssd}
vmssctl=${VMSSCTL_BIN:-$root/.build/release/vmssctl}
fake=${FAKE_AZURE:-$root/fakeazure/fake_azure.py}
for needed in "$vmssd" "$vmssctl" "$fake"; do
    if [[ ! -e "$needed" ]]; then
        echo "demo: $needed is missing (run 'make build')" >&2
        exit 1
    fi
done

nodes=8            # Nodes in the scale set
poll=0.5           # the controller's 5 s --node-monitor-period, compressed ten times
rounds=12          # a minute of polling, compressed
listing_ttl=2      # vmssVirtualMachinesCacheTTLInSeconds (600 s in production)
negative_ttl=3     # --negative-cache-ttl (120 s in production)

# Everything stays on loopback: no proxy may pick up the fake's or vmssd's requests.
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY AZURE_ENVIRONMENT_FILEPATH
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

work=$(mktemp -d /tmp/vmssd-demo.XXXXXX)
fake_pid=
vmssd_pid=
cleanup() {
    if [[ -n "$vmssd_pid" ]]; then
        kill -TERM "$vmssd_pid" 2>/dev/null || true
        wait "$vmssd_pid" 2>/dev/null || true
    fi
    if [[ -n "$fake_pid" ]]; then
        kill -TERM "$fake_pid" 2>/dev/null || true
        wait "$fake_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }

cat >"$work/inventory.json" <<JSON
{
  "credentials": {"tenantId": "tenant-demo",
                  "clientSecrets": [{"clientId": "client-demo", "clientSecret": "demo-secret"}]},
  "subscriptions": {"sub-demo": {"resourceGroups": {"rg-demo": {
    "location": "westeurope",
    "scaleSets": [{"name": "workers", "computerNamePrefix": "workers", "capacity": $nodes,
                   "zones": ["1", "2", "3"]}]
  }}}}
}
JSON

python3 "$fake" --port 0 --inventory "$work/inventory.json" --port-file "$work/fake.port" \
    >"$work/fake-azure.log" 2>&1 &
fake_pid=$!
for _ in $(seq 200); do
    [[ -s "$work/fake.port" ]] && break
    kill -0 "$fake_pid" 2>/dev/null || { cat "$work/fake-azure.log" >&2; exit 1; }
    sleep 0.05
done
port=$(tr -d '[:space:]' <"$work/fake.port")
[[ "$port" =~ ^[0-9]+$ ]] || { echo "demo: the fake Azure wrote no port" >&2; exit 1; }
fake_url="http://127.0.0.1:$port"

# control METHOD PATH [JSON]: the fake Azure's control API; prints its JSON answer.
control() {
    python3 - "$fake_url/_fake/$2" "$1" "${3:-}" <<'PY'
import sys, urllib.request
url, method, body = sys.argv[1], sys.argv[2], sys.argv[3]
request = urllib.request.Request(url, data=body.encode() if body else None, method=method,
                                 headers={"Content-Type": "application/json"})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open(request, timeout=10).read().decode())
PY
}
list_calls() {
    control GET counts | python3 -c 'import json, sys; print(json.load(sys.stdin)["list_vmss_vms"])'
}

python3 "$root/scripts/cloud_config.py" "$work/inventory.json" >"$work/azure.json"
socket="$work/vmssd.sock"
"$vmssd" --socket "$socket" --cloud-config "$work/azure.json" \
    --arm-endpoint "$fake_url" --aad-endpoint "$fake_url" --imds-endpoint "$fake_url" \
    --listing-ttl "$listing_ttl" --negative-cache-ttl "$negative_ttl" \
    --refresh-on-miss-interval 1 >"$work/vmssd.log" 2>&1 &
vmssd_pid=$!
for _ in $(seq 200); do
    "$vmssctl" --socket "$socket" --timeout 1 health >/dev/null 2>&1 && break
    kill -0 "$vmssd_pid" 2>/dev/null || { cat "$work/vmssd.log" >&2; exit 1; }
    sleep 0.05
done

scale_set="azure:///subscriptions/sub-demo/resourceGroups/rg-demo/providers/Microsoft.Compute"
scale_set+="/virtualMachineScaleSets/workers"
ids=()
for ((i = 0; i < nodes; i++)); do
    ids+=("$scale_set/virtualMachines/$i")
done

cat <<TEXT
vmssd demo: a scale set deleted under live Nodes
  fake Azure  $fake_url   (scale set "workers", $nodes instances)
  vmssd       unix://$socket
  clock       compressed: the controller polls every ${poll}s (5 s in a cluster);
              listing TTL ${listing_ttl}s, negative TTL ${negative_ttl}s
              (600 s and 120 s by default)
TEXT

say "1. The cloud node-lifecycle controller asks about each Node"
for id in "${ids[@]}"; do
    answer=$("$vmssctl" --socket "$socket" exists "$id" || true)
    printf '  exists %s -> %s\n' "${id##*/virtualMachineScaleSets/}" "$answer"
done
printf '  ARM listings so far: %s\n' "$(list_calls)"

say "2. Someone deletes the scale set: instances go Deleting, then vanish, then the set is gone"
control DELETE scalesets \
    '{"subscription": "sub-demo", "resourceGroup": "rg-demo", "scaleSet": "workers", "delay": 1}' \
    >/dev/null
echo "  DELETE .../virtualMachineScaleSets/workers"
echo "  (instances Deleting now, gone at +1s; ARM answers 404 ParentResourceNotFound from +2s)"

say "3. The controller keeps polling all $nodes Nodes, every ${poll}s (a minute, compressed)"
questions=0
for ((round = 1; round <= rounds; round++)); do
    line=""
    for id in "${ids[@]}"; do
        answer=$("$vmssctl" --socket "$socket" --timeout 5 exists "$id" 2>&1 || true)
        questions=$((questions + 1))
        line+=" ${answer%% *}"
    done
    printf '  t=+%4.1fs (cluster time +%3ds)%s\n' \
        "$(awk -v r="$round" -v p="$poll" 'BEGIN { print r * p }')" "$((round * 5))" "$line"
    sleep "$poll"
done

say "4. Every Node is now answered false: the controller deletes the Node objects"
gone=0
for id in "${ids[@]}"; do
    answer=$("$vmssctl" --socket "$socket" exists "$id" || true)
    questions=$((questions + 1))
    printf '  exists %s -> %s\n' "${id##*/virtualMachineScaleSets/}" "$answer"
    [[ "$answer" == "false" ]] && gone=$((gone + 1))
done

say "5. What it cost"
listings=$(list_calls)
asked=$((questions + nodes))
printf '  questions asked:                              %5d\n' "$asked"
printf '  ARM listings made by vmssd:                   %5d\n' "$listings"
printf '  ARM listings without a negative cache:        %5d   (one list per question)\n' "$asked"
echo "  vmssd's own counters (vmssctl stats):"
"$vmssctl" --socket "$socket" stats | sed 's/^/    /'

if ((gone != nodes)); then
    echo "demo: FAILED: only $gone of $nodes Nodes were answered false" >&2
    exit 1
fi
echo
echo "demo: every Node answered false; $listings ARM listings instead of $asked"
