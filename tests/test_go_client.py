"""The Go client (clients/go) against the real vmssd: `go test` runs its live test with the socket
and what the fake Azure behind it holds, so the client a controller manager would embed is
checked end to end, not only against a stub server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, loopback_env

PREFIX = "azure:///subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/"

INVENTORY = {
    "tokenLifetimeSeconds": 3600,
    "credentials": {
        "tenantId": "tenant-1",
        "clientSecrets": [{"clientId": "client-1", "clientSecret": "go-test-secret"}],
    },
    "subscriptions": {
        "sub-1": {
            "resourceGroups": {
                "rg-1": {
                    "location": "westeurope",
                    "scaleSets": [
                        {"name": "pool", "computerNamePrefix": "pool", "sku": "Standard_D4s_v5",
                         "zones": ["1", "2"],
                         "vms": [{"instanceId": "0", "zone": "1"},
                                 {"instanceId": "3", "zone": "2", "privateIp": "10.240.0.7"}]},
                        {"name": "stopped", "vms": [
                            {"instanceId": "0", "powerState": "deallocated"}]},
                    ],
                    "virtualMachines": [
                        {"name": "solo", "vmSize": "Standard_D2s_v5", "privateIp": "10.1.0.4"}],
                }
            }
        }
    },
}


def vmss(name: str, instance: int) -> str:
    return f"{PREFIX}virtualMachineScaleSets/{name}/virtualMachines/{instance}"


EXPECTATIONS = {
    "exists": [vmss("pool", 0), vmss("pool", 3), f"{PREFIX}virtualMachines/solo"],
    "gone": [vmss("deleted-pool", 0), f"{PREFIX}virtualMachines/deleted-vm"],
    "shutdown": [vmss("stopped", 0)],
    "running": [vmss("pool", 0)],
    "not_found_metadata": [vmss("deleted-pool", 1)],
    "metadata": [
        {"provider_id": vmss("pool", 3), "instance_type": "Standard_D4s_v5",
         "zone": "westeurope-2", "region": "westeurope"},
        # A VM outside any zone reports its fault domain as its zone, as the Azure provider does.
        {"provider_id": f"{PREFIX}virtualMachines/solo", "instance_type": "Standard_D2s_v5",
         "zone": "0", "region": "westeurope",
         "node_addresses": [{"Type": "Hostname", "Address": "solo"},
                            {"Type": "InternalIP", "Address": "10.1.0.4"}]},
    ],
}


def go_test(socket_path: Path, expectations: dict, tmp: Path) -> subprocess.CompletedProcess:
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    expectations_path = tmp / "expectations.json"
    expectations_path.write_text(json.dumps(expectations))
    env = loopback_env({"VMSSD_SOCKET": str(socket_path),
                        "VMSSD_EXPECTATIONS": f"@{expectations_path}"})
    script = ('source scripts/go-env.sh && cd "$VMSSD_GO_SRC" && '
              'go test -count=1 -v -run TestAgainstARealVmssd ./clients/go/')
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("fake_azure_inventory", [INVENTORY], indirect=True)
def test_the_go_client_gets_the_verdicts_the_fake_azure_implies(vmssd, short_tmp):
    instance = vmssd()

    result = go_test(instance.socket, EXPECTATIONS, short_tmp)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "--- PASS: TestAgainstARealVmssd" in output
    assert "SKIP" not in output


@pytest.mark.parametrize("fake_azure_inventory", [INVENTORY], indirect=True)
def test_the_go_live_test_fails_on_a_wrong_expectation(vmssd, short_tmp):
    instance = vmssd()
    wrong = dict(EXPECTATIONS, gone=[vmss("pool", 0)], exists=[])

    result = go_test(instance.socket, wrong, short_tmp)

    assert result.returncode != 0
    assert "--- FAIL: TestAgainstARealVmssd" in result.stdout
    assert "want false" in result.stdout
