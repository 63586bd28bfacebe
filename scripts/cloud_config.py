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
    """The azure.json fields the inventory's fake Azure will accept.

    In the fake's format, the tenant and the first client secret come from "credentials", and
    the subscription, resource group and location are the first ones under "subscriptions".
    Flat keys (azure.json or snake_case spelling, at the top level or under "credentials" or
    "config") override those.
    """
    config = dict(DEFAULT_CLOUD_CONFIG)
    credentials = inventory.get("credentials")
    if isinstance(credentials, dict):
        secrets = credentials.get("clientSecrets")
        if isinstance(secrets, list) and secrets and isinstance(secrets[0], dict):
            config["aadClientId"] = secrets[0].get("clientId", config["aadClientId"])
            config["aadClientSecret"] = secrets[0].get("clientSecret", config["aadClientSecret"])
    subscriptions = inventory.get("subscriptions")
    if isinstance(subscriptions, dict) and subscriptions:
        subscription_id, subscription = next(iter(subscriptions.items()))
        config["subscriptionId"] = subscription_id
        groups = subscription.get("resourceGroups") if isinstance(subscription, dict) else None
        if isinstance(groups, dict) and groups:
            group_name, group = next(iter(groups.items()))
            config["resourceGroup"] = group_name
            if isinstance(group, dict) and isinstance(group.get("location"), str):
                config["location"] = group["location"]
    sources = [inventory] + [
        inventory[key] for key in ("credentials", "config") if isinstance(inventory.get(key), dict)
    ]
    for field, snake in _SNAKE.items():
        for source in sources:
            for key in (field, snake):
                if isinstance(source.get(key), str) and source[key]:
                    config[field] = source[key]
    return config


def inventory_provider_ids(inventory: dict[str, Any]) -> Iterator[str]:
    """The provider IDs of the uniform scale set instances and standalone VMs in the fake's
    inventory format (instances listed under "vms", or 0..capacity-1)."""
    subscriptions = inventory.get("subscriptions")
    if not isinstance(subscriptions, dict):
        return
    for subscription_id, subscription in subscriptions.items():
        groups = subscription.get("resourceGroups", {}) if isinstance(subscription, dict) else {}
        for group_name, group in groups.items():
            base = (f"azure:///subscriptions/{subscription_id}/resourceGroups/{group_name}"
                    "/providers/Microsoft.Compute")
            for scale_set in group.get("scaleSets", []):
                if scale_set.get("orchestrationMode", "Uniform") != "Uniform":
                    continue
                instances = [str(vm.get("instanceId")) for vm in scale_set.get("vms", [])]
                if "vms" not in scale_set:
                    instances = [str(i) for i in range(int(scale_set.get("capacity", 0)))]
                for instance in instances:
                    yield (f"{base}/virtualMachineScaleSets/{scale_set['name']}"
                           f"/virtualMachines/{instance}")
            for vm in group.get("virtualMachines", []):
                yield f"{base}/virtualMachines/{vm['name']}"


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
            inventory = json.load(file)
        seen = dict.fromkeys([*inventory_provider_ids(inventory), *provider_ids(inventory)])
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
