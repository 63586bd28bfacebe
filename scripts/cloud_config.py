#!/usr/bin/env python3
"""Writes the azure.json that matches a fake Azure inventory, for `make run` and the tests.

Credentials and scope come from the inventory (top level, or under "credentials"/"config", in
azure.json or snake_case spelling), falling back to DEFAULT_CLOUD_CONFIG. Also lists the VMSS
instance provider IDs an inventory mentions, so a person has something to ask about.

Usage: cloud_config.py INVENTORY            print azure.json
       cloud_config.py --provider-ids INVENTORY   print azure:// provider IDs, one a line
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Iterator

DEFAULT_CLOUD_CONFIG: dict[str, Any] = {
    "cloud": "AzurePublicCloud",
    "tenantId": "aaaaaaaa-0000-0000-0000-000000000001",
    "subscriptionId": "00000000-0000-0000-0000-000000000000",
    "resourceGroup": "demo-rg",
    "location": "westeurope",
    "aadClientId": "11111111-2222-3333-4444-555555555555",
    "aadClientSecret": "fake-secret-not-real",
    "useManagedIdentityExtension": False,
    "vmType": "vmss",
}

_SNAKE = {
    "tenantId": "tenant_id",
    "subscriptionId": "subscription_id",
    "resourceGroup": "resource_group",
    "location": "location",
    "aadClientId": "client_id",
    "aadClientSecret": "client_secret",
}

_INSTANCE_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/"
    r"(?:virtualMachineScaleSets/[^/]+/virtualMachines/[^/]+|virtualMachines/[^/]+)$",
    re.IGNORECASE,
)


def cloud_config_for(inventory: dict[str, Any]) -> dict[str, Any]:
    """The azure.json fields the inventory's fake Azure will accept."""
    config = dict(DEFAULT_CLOUD_CONFIG)
    sources = [inventory] + [
        inventory[key] for key in ("credentials", "config") if isinstance(inventory.get(key), dict)
    ]
    for field, snake in _SNAKE.items():
        for source in sources:
            for key in (field, snake):
                if isinstance(source.get(key), str) and source[key]:
                    config[field] = source[key]
    return config


def provider_ids(value: Any) -> Iterator[str]:
    """Every VM resource ID found anywhere in the inventory, as an azure:// provider ID."""
    if isinstance(value, dict):
        for item in value.values():
            yield from provider_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from provider_ids(item)
    elif isinstance(value, str) and _INSTANCE_ID.search(value):
        resource = value[value.lower().index("/subscriptions/"):]
        yield "azure://" + resource


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--provider-ids":
        with open(argv[2]) as file:
            seen = dict.fromkeys(provider_ids(json.load(file)))
        print("\n".join(seen))
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as file:
        print(json.dumps(cloud_config_for(json.load(file)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
