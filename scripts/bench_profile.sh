#!/usr/bin/env bash
# Where vmssd's CPU goes per hot question: vmssd with 1000 cached VMs under `vmssctl bench`
# (1 connection x 16 concurrent), sampled by `perf record --call-graph dwarf` for a few seconds.
# Prints the top self-time symbols and the top inclusive vmssd frames, demangled.
# Usage: scripts/bench_profile.sh [SECONDS]   (after `make bench` has built the binaries)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-3}
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -ge 1 && "$seconds" -le 30 ]] || {
    echo "bench_profile: SECONDS must be 1..30" >&2
    exit 2
}
command -v perf >/dev/null || { echo "bench_profile: perf is not installed" >&2; exit 1; }
for binary in vmssd vmssctl; do
    [[ -x "$root/.build/release/$binary" ]] || { echo "bench_profile: run make bench" >&2; exit 1; }
done
[[ -x "$root/.build/go/goclient" ]] || { echo "bench_profile: run make bench" >&2; exit 1; }
unset http_proxy https_proxy all_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY

work=$(mktemp -d /tmp/vmssd-profile.XXXXXX)
fake_pid=
vmssd_pid=
bench_pid=
cleanup() {
    trap - INT TERM EXIT
    for pid in $bench_pid $vmssd_pid $fake_pid; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup INT TERM EXIT

python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
sub, rg = "00000000-0000-0000-0000-000000000000", "bench-rg"
inventory = {"credentials": {"tenantId": "tenant-bench", "clientSecrets": [
    {"clientId": "client-bench", "clientSecret": "bench-secret-not-real"}]},
    "subscriptions": {sub: {"resourceGroups": {rg: {"location": "westeurope", "scaleSets": [
        {"name": "bench-pool-%03d" % i, "capacity": 100} for i in range(10)]}}}}}
json.dump(inventory, open(work + "/inventory.json", "w"))
with open(work + "/ids.txt", "w") as ids:
    for i in range(10):
        for j in range(100):
            ids.write("azure:///subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/"
                      "virtualMachineScaleSets/bench-pool-%03d/virtualMachines/%d\n" % (sub, rg, i, j))
EOF
python3 "$root/scripts/cloud_config.py" "$work/inventory.json" >"$work/azure.json"
python3 "$root/fakeazure/fake_azure.py" --port 0 --inventory "$work/inventory.json" \
    --port-file "$work/port" >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 200); do [[ -s "$work/port" ]] && break; sleep 0.05; done
url="http://127.0.0.1:$(tr -d '[:space:]' <"$work/port")"
"$root/.build/release/vmssd" --socket "$work/vmssd.sock" --cloud-config "$work/azure.json" \
    --arm-endpoint "$url" --aad-endpoint "$url" --listing-ttl 3600 >"$work/vmssd.log" 2>&1 &
vmssd_pid=$!
for _ in $(seq 200); do [[ -S "$work/vmssd.sock" ]] && break; sleep 0.05; done
"$root/.build/go/goclient" -mode rounds -socket "$work/vmssd.sock" \
    -provider-ids-file "$work/ids.txt" -rounds 1 >/dev/null

"$root/.build/release/vmssctl" --socket "$work/vmssd.sock" bench --connections 1 \
    --concurrency 16 --seconds $((seconds + 3)) --warmup 1 --provider-ids-file "$work/ids.txt" \
    --server-pid "$vmssd_pid" >"$work/bench.json" &
bench_pid=$!
sleep 1.5
timeout $((seconds + 5)) perf record -q -F 700 --call-graph dwarf,16384 -e cpu-clock \
    -p "$vmssd_pid" -o "$work/perf.data" -- sleep "$seconds" 2>/dev/null || true
wait "$bench_pid" || true
bench_pid=
echo "load: $(cat "$work/bench.json")"
echo "== self time (top 20) =="
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
    | grep '%' | head -20 | swift demangle --simplified | cut -c1-150 || true
echo "== inclusive, vmssd's own frames (top 25) =="
perf report -i "$work/perf.data" --children --sort symbol --stdio -g none 2>/dev/null \
    | grep '%' | swift demangle --simplified \
    | grep -E 'ProviderID|InstancesService|InstanceCache|CacheState|H2Connection|Server|nghttp2|split|lowercased|send|flush' \
    | head -25 | cut -c1-150 || true
