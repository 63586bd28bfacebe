#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target under fuzz/<target>/seed-*: real provider IDs, the
published ARM example bodies plus bodies shaped like the fake Azure's, and framed protobuf
requests of every type. `scripts/fuzz.sh` runs it before fuzzing; the fuzzers then add what they
find to the same directories, minimized before committing.

Usage: fuzz/seed.py [fixtures-dir]
"""
import json
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# The shared fixtures sit beside the repository, as they do for CI and the developers.
DEFAULT_FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / \
    "azure-rest-api-examples"
FIXTURES = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FIXTURES

PREFIX = "azure:///subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/"
PROVIDER_IDS = [
    "",
    PREFIX + "virtualMachineScaleSets/pool/virtualMachines/17",
    PREFIX + "virtualMachineScaleSets/pool/virtualMachines/pool_17",
    PREFIX.lower() + "virtualmachinescalesets/pool/virtualmachines/0",
    PREFIX.upper() + "VIRTUALMACHINESCALESETS/POOL/VIRTUALMACHINES/9",
    PREFIX + "virtualMachines/solo",
    "azure:///subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/MC_rg_aks_westeurope"
    "/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-12345678-vmss"
    "/virtualMachines/3",
    "kind://docker/kind/kind-worker",
    "aws:///us-east-1a/i-0123456789abcdef0",
    "azure://subscriptions/sub-1/resourceGroups/rg-1",
    PREFIX + "virtualMachineScaleSets/pool/virtualMachines/",
    PREFIX + "virtualMachineScaleSets/pool/virtualMachines/17/extra",
    PREFIX.replace("Compute", "Network") + "networkInterfaces/nic",
]


def write(target, name, data):
    directory = ROOT / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ("seed-" + name)).write_bytes(data if isinstance(data, bytes) else data.encode())


def varint(value):
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number, payload):
    payload = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def framed(message):
    return b"\x00" + struct.pack(">I", len(message)) + message


def main():
    for index, text in enumerate(PROVIDER_IDS):
        write("FuzzProviderID", "%02d" % index, text)

    bodies = {}
    for path in sorted(FIXTURES.glob("*.json")):
        example = json.loads(path.read_text())
        body = example.get("responses", {}).get("200", {}).get("body")
        if body is not None:
            bodies[path.stem] = json.dumps(body, separators=(",", ":"))
    bodies["error-parent"] = ('{"error":{"code":"ParentResourceNotFound","message":"Can not perform '
                              'requested operation on nested resource."}}')
    bodies["error-throttled"] = '{"error":{"code":"TooManyRequests","message":"throttled"}}'
    bodies["broken"] = '{"value":[{"id":"/subscriptions/x","properties":{"instanceVi'
    bodies["escapes"] = ('{"value":[{"id":"a\\u0000\\ud83d\\ude00","instanceId":"1",'
                         '"properties":{"instanceView":{"statuses":[{"code":"PowerState/stopped"}]}}}]}')
    bodies["nested"] = "[" * 64 + "]" * 64
    for name, text in bodies.items():
        write("FuzzARMDecoder", name, text)

    requests = {
        "provider-id": field_bytes(1, PROVIDER_IDS[1]),
        "node": field_bytes(1, "pool000011") + field_bytes(2, PROVIDER_IDS[1]) + field_varint(3, 1714557600),
        "exist-many": field_bytes(1, PROVIDER_IDS[1]) + field_bytes(1, PROVIDER_IDS[5]),
        "invalidate": field_bytes(1, "sub-1") + field_bytes(2, "rg-1") + field_bytes(3, "pool"),
        "health": field_bytes(1, "cloudprovider.instances.v1.Instances"),
        "empty": b"",
        "negative": field_varint(3, -1),
    }
    for name, message in requests.items():
        write("FuzzGRPCMessage", name, b"\x00" + framed(message))
        write("FuzzGRPCMessage", name + "-split", b"\x02" + framed(message) + framed(message))
    write("FuzzGRPCMessage", "too-large", b"\x20" + b"\x00\x00\x00\x10\x00" + b"x" * 8)
    write("FuzzGRPCMessage", "compressed", b"\x00\x01\x00\x00\x00\x01x")


if __name__ == "__main__":
    main()
