#!/usr/bin/env bash
# Starts the fake Azure with the demo inventory and vmssd in the foreground against it, all on
# loopback and a temporary socket, and prints some vmssctl commands to try. Ctrl-C stops both.
# Usage: scripts/run.sh [extra vmssd arguments]   (VMSSD_BIN / VMSSCTL_BIN override the binaries)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
vmssd=${VMSSD_BIN:-$root/.build/release/vmssd}
vmssctl=${VMSSCTL_BIN:-$root/.build/release/vmssctl}
fake=${FAKE_AZURE:-$root/fakeazure/fake_azure.py}
inventory=${INVENTORY:-$root/fakeazure/demo-inventory.json}
if [[ -z "${INVENTORY:-}" && ! -e "$inventory" && -e "$root/fakeazure/example-inventory.json" ]]; then
    echo "run: no fakeazure/demo-inventory.json; using fakeazure/example-inventory.json" >&2
    inventory="$root/fakeazure/example-inventory.json"
fi

for needed in "$vmssd" "$vmssctl" "$fake" "$inventory"; do
    if [[ ! -e "$needed" ]]; then
        echo "run: $needed is missing (run 'make build'; the fake Azure lives in fakeazure/)" >&2
        exit 1
    fi
done

# Everything stays on loopback: no proxy may pick up the fake's or vmssd's requests.
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY AZURE_ENVIRONMENT_FILEPATH
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

work=$(mktemp -d /tmp/vmssd-run.XXXXXX)
fake_pid=
vmssd_pid=
stop() {
    trap - INT TERM EXIT
    if [[ -n "$vmssd_pid" ]] && kill -0 "$vmssd_pid" 2>/dev/null; then
        kill -TERM "$vmssd_pid" 2>/dev/null || true
    fi
    if [[ -n "$vmssd_pid" ]]; then
        wait "$vmssd_pid" 2>/dev/null || true
    fi
    if [[ -n "$fake_pid" ]]; then
        kill -TERM "$fake_pid" 2>/dev/null || true
        wait "$fake_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
    echo "run: stopped vmssd and the fake Azure"
}
trap stop INT TERM EXIT

python3 "$fake" --port 0 --inventory "$inventory" --port-file "$work/fake.port" \
    >"$work/fake-azure.log" 2>&1 &
fake_pid=$!
for _ in $(seq 200); do
    [[ -s "$work/fake.port" ]] && break
    kill -0 "$fake_pid" 2>/dev/null || { cat "$work/fake-azure.log" >&2; exit 1; }
    sleep 0.05
done
port=$(tr -d '[:space:]' <"$work/fake.port")
[[ "$port" =~ ^[0-9]+$ ]] || { echo "run: the fake Azure wrote no port" >&2; exit 1; }
fake_url="http://127.0.0.1:$port"

python3 "$root/scripts/cloud_config.py" "$inventory" >"$work/azure.json"
socket="$work/vmssd.sock"
mapfile -t ids < <(python3 "$root/scripts/cloud_config.py" --provider-ids "$inventory")
pick() {  # the first provider ID whose text matches $1, else the first one
    local id
    for id in "${ids[@]}"; do
        [[ "$id" == *$1* ]] && { echo "$id"; return; }
    done
    echo "${ids[0]:-azure:///subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/virtualMachineScaleSets/VMSS/virtualMachines/0}"
}
example=$(pick "aks-user-12345678-vmss/virtualMachines/1")
stopped=$(pick "aks-batch-12345678-vmss/virtualMachines/1")
standalone=$(pick "/virtualMachines/jumpbox")
read -r subscription group < <(python3 -c '
import json, sys
inventory = json.load(open(sys.argv[1]))
sub, body = next(iter(inventory["subscriptions"].items()))
print(sub, next(iter(body["resourceGroups"])))' "$inventory")

cat <<TEXT
run: fake Azure on $fake_url (inventory $inventory, log $work/fake-azure.log)
run: vmssd on unix://$socket with $work/azure.json
Try, in another terminal:
  $vmssctl --socket $socket health
  $vmssctl --socket $socket exists '$example'
  $vmssctl --socket $socket shutdown '$stopped'
  $vmssctl --socket $socket metadata '$example'
  $vmssctl --socket $socket metadata --node aks-user-12345678-vmss000001
  $vmssctl --socket $socket exists '$standalone'
  $vmssctl --socket $socket stats
Delete a scale set in the fake Azure, then ask again (false once the listing is refetched):
  curl -s -X DELETE $fake_url/_fake/scalesets -d '{"subscription": "$subscription", "resourceGroup": "$group", "scaleSet": "aks-user-12345678-vmss", "delay": 1}'
  $vmssctl --socket $socket invalidate
  $vmssctl --socket $socket exists '$example'
Ctrl-C stops both.
TEXT

"$vmssd" --socket "$socket" --cloud-config "$work/azure.json" \
    --arm-endpoint "$fake_url" --aad-endpoint "$fake_url" --imds-endpoint "$fake_url" "$@" &
vmssd_pid=$!
status=0
wait "$vmssd_pid" || status=$?
vmssd_pid=
exit "$status"
