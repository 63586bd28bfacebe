#!/usr/bin/env bash
# Regenerates the code derived from Protos/: the protoc-c output the Swift package compiles
# (Sources/CInstancesProto) and the Go package for the Instances service (clients/go/instancesv1).
# Usage: scripts/generate.sh [OUTPUT_ROOT]   (default: the repository itself)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
protos=(cloudprovider/instances/v1/instances.proto grpc/health/v1/health.proto)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# protoc-c writes .c and .h side by side; the C target wants headers under include/ so that
# the module map and the .c files both find them by their proto path.
mkdir -p "$scratch/c"
protoc-c --proto_path="$root/Protos" --c_out="$scratch/c" "${protos[@]}"
for proto in "${protos[@]}"; do
    base=${proto%.proto}
    mkdir -p "$out/Sources/CInstancesProto/$(dirname "$base")" \
        "$out/Sources/CInstancesProto/include/$(dirname "$base")"
    cp "$scratch/c/$base.pb-c.c" "$out/Sources/CInstancesProto/$base.pb-c.c"
    cp "$scratch/c/$base.pb-c.h" "$out/Sources/CInstancesProto/include/$base.pb-c.h"
done

# Only the Instances service is generated for Go: grpc-go ships its own health package.
mkdir -p "$scratch/go" "$out/clients/go/instancesv1"
protoc --proto_path="$root/Protos" --go_out=plugins=grpc:"$scratch/go" \
    cloudprovider/instances/v1/instances.proto
cp "$scratch/go/vmssd/clients/go/instancesv1/instances.pb.go" "$out/clients/go/instancesv1/"
echo "generate: wrote protoc-c and Go output under $out"
