"""What the end-to-end suites share: a test inventory for the fake Azure, provider-ID builders,
and a thin client over the generated stubs that reads Admin/Stats as plain numbers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc

SUB = "sub-1"
RG = "rg-1"
LOCATION = "westeurope"

# Every power and provisioning state the verdict rules distinguish, in one resource group.
INVENTORY: dict[str, Any] = {
    "tokenLifetimeSeconds": 3600,
    "credentials": {
        "tenantId": "tenant-1",
        "clientSecrets": [{"clientId": "client-1", "clientSecret": "s3cr3t-value"}],
    },
    "subscriptions": {
        SUB: {
            "resourceGroups": {
                RG: {
                    "location": LOCATION,
                    "scaleSets": [
                        {"name": "pool", "computerNamePrefix": "pool", "sku": "Standard_D4s_v5",
                         "capacity": 25, "zones": ["1", "2", "3"], "subnet": "10.240"},
                        {"name": "power", "computerNamePrefix": "power", "sku": "Standard_D2s_v5",
                         "subnet": "10.241", "vms": [
                             {"instanceId": "0", "powerState": "deallocated"},
                             {"instanceId": "1", "powerState": "stopped"},
                             {"instanceId": "2", "powerState": "running"},
                             {"instanceId": "3", "powerState": "deallocated",
                              "provisioningState": "Updating"},
                             {"instanceId": "4", "powerState": "deallocating"},
                         ]},
                    ],
                    "virtualMachines": [
                        {"name": "solo", "vmSize": "Standard_D2s_v5", "privateIp": "10.1.0.4",
                         "zones": ["2"]},
                        {"name": "solo-off", "vmSize": "Standard_B2s", "privateIp": "10.1.0.5",
                         "powerState": "deallocated"},
                    ],
                }
            }
        }
    },
}


def vmss_id(scale_set: str, instance: int | str, sub: str = SUB, rg: str = RG) -> str:
    """The provider ID of a uniform scale set instance."""
    return (f"azure:///subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
            f"virtualMachineScaleSets/{scale_set}/virtualMachines/{instance}")


def vm_id(name: str, sub: str = SUB, rg: str = RG) -> str:
    """The provider ID of a standalone VM."""
    return (f"azure:///subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
            f"virtualMachines/{name}")


def computer_name(prefix: str, instance: int) -> str:
    """A uniform scale set instance's computer name: the prefix and 6 base-36 digits."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        instance, rest = divmod(instance, 36)
        text = digits[rest] + text
        if instance == 0:
            break
    return prefix + text.rjust(6, "0")


class Api:
    """The Instances, Admin and Health services of one server, over one grpcio channel."""

    def __init__(self, stubs, channel: grpc.Channel):
        self.pb = stubs.instances_pb2
        self.hpb = stubs.health_pb2
        self.channel = channel
        self.instances = stubs.instances_pb2_grpc.InstancesStub(channel)
        self.admin = stubs.instances_pb2_grpc.AdminStub(channel)
        self.health = stubs.health_pb2_grpc.HealthStub(channel)

    def exists(self, provider_id: str, timeout: float = 10) -> bool:
        request = self.pb.ProviderIDRequest(provider_id=provider_id)
        return self.instances.InstanceExistsByProviderID(request, timeout=timeout).exists

    def exists_future(self, provider_id: str, timeout: float = 10):
        request = self.pb.ProviderIDRequest(provider_id=provider_id)
        return self.instances.InstanceExistsByProviderID.future(request, timeout=timeout)

    def node_exists(self, provider_id: str = "", node_name: str = "", created: int = 0,
                    timeout: float = 10) -> bool:
        request = self.pb.NodeRequest(provider_id=provider_id, node_name=node_name,
                                      creation_unix_seconds=created)
        return self.instances.InstanceExists(request, timeout=timeout).exists

    def shutdown(self, provider_id: str, timeout: float = 10) -> bool:
        request = self.pb.ProviderIDRequest(provider_id=provider_id)
        return self.instances.InstanceShutdownByProviderID(request, timeout=timeout).shutdown

    def metadata(self, provider_id: str = "", node_name: str = "", timeout: float = 10):
        request = self.pb.NodeRequest(provider_id=provider_id, node_name=node_name)
        return self.instances.InstanceMetadata(request, timeout=timeout)

    def batch(self, provider_ids: list[str], timeout: float = 10):
        request = self.pb.InstancesExistRequest(provider_ids=provider_ids)
        return self.instances.InstancesExist(request, timeout=timeout).verdicts

    def stats(self):
        return self.admin.Stats(self.pb.StatsRequest(), timeout=10)

    def arm_calls(self) -> dict[tuple[str, str], int]:
        """Admin/Stats ARM call counts keyed by (operation, outcome)."""
        return {(row.operation, row.outcome): row.count for row in self.stats().arm_calls}

    def invalidate(self, scale_set: str = "", sub: str = "", rg: str = "") -> int:
        request = self.pb.InvalidateRequest(subscription_id=sub, resource_group=rg,
                                            scale_set=scale_set)
        return self.admin.Invalidate(request, timeout=10).removed

    def health_status(self, service: str = "", timeout: float = 5):
        return self.health.Check(self.hpb.HealthCheckRequest(service=service),
                                 timeout=timeout).status

    def wait_serving(self, timeout: float = 10) -> None:
        """Returns once health says SERVING (the first token is in hand)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health_status() == self.hpb.HealthCheckResponse.SERVING:
                return
            time.sleep(0.05)
        raise AssertionError(f"not SERVING within {timeout}s")


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    """The RpcError `call` raises; fails the test when it returns."""
    try:
        result = call(*args, **kwargs)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"expected an RpcError, got {result!r}")


def list_calls(fake) -> int:
    """Scale-set listing requests (pages) the fake has served."""
    return fake.counts()["list_vmss_vms"]


def arm_calls_total(counts: dict[str, int]) -> int:
    """The fake's ARM reads, tokens left out."""
    return sum(v for k, v in counts.items() if not k.startswith("token"))
