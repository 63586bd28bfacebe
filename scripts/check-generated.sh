#!/usr/bin/env bash
# Fails when the committed generated code (Sources/CInstancesProto, clients/go/instancesv1,
# Sources/VMSSService/DescriptorSet.swift) is not exactly what scripts/generate.sh produces from
# Protos/ with the installed compilers.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT

"$root/scripts/generate.sh" "$fresh" >/dev/null
status=0
while IFS= read -r -d '' file; do
    relative=${file#"$fresh"/}
    if ! diff -u "$root/$relative" "$file"; then
        status=1
    fi
done < <(find "$fresh" -type f -print0)
# A generated file that was committed but is no longer produced is stale too.
while IFS= read -r -d '' file; do
    relative=${file#"$root"/}
    if [[ ! -e "$fresh/$relative" ]]; then
        echo "stale generated file: $relative"
        status=1
    fi
done < <(find "$root/Sources/CInstancesProto" "$root/clients/go/instancesv1" \
    -type f \( -name '*.pb-c.[ch]' -o -name '*.pb.go' \) -print0)
if ((status != 0)); then
    echo "check-generated: generated code differs from Protos/; run 'make generate' and commit" >&2
    exit 1
fi
echo "check-generated: generated code matches Protos/"
