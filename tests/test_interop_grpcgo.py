"""grpc-go 1.33, as controller managers use it, against vmssd: the interop checker
(tests/interop/go, already shown right against the grpc-go server) with expectations drawn from
tests/helpers.INVENTORY, and the ARM requests the whole run cost."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.parse

from conftest import loopback_env
from helpers import computer_name, vm_id, vmss_id

EXPECTATIONS = {
    "exists": [vmss_id("pool", 0), vmss_id("pool", 1), vmss_id("power", 0)],
    "gone": [vmss_id("pool", 99), vmss_id("no-such-pool", 0)],
    "shutdown": [vmss_id("power", 0), vmss_id("power", 1)],
    "running": [vmss_id("pool", 0), vmss_id("power", 3)],
    "not_found_metadata": [vmss_id("pool", 99), vmss_id("no-such-pool", 0)],
    "metadata": [
        {"provider_id": vmss_id("pool", 3), "instance_type": "Standard_D4s_v5",
         "zone": "westeurope-1", "region": "westeurope",
         "node_addresses": [{"type": "Hostname", "address": "pool000003"},
                            {"type": "InternalIP", "address": "10.240.0.7"}]},
        {"node_name": computer_name("pool", 5), "instance_type": "Standard_D4s_v5",
         "zone": "westeurope-3", "region": "westeurope",
         "node_addresses": [{"type": "Hostname", "address": "pool000005"},
                            {"type": "InternalIP", "address": "10.240.0.9"}]},
        {"provider_id": vm_id("solo"), "instance_type": "Standard_D2s_v5",
         "zone": "westeurope-2", "region": "westeurope",
         "node_addresses": [{"type": "Hostname", "address": "solo"},
                            {"type": "InternalIP", "address": "10.1.0.4"}]},
    ],
    # The fake holds every listing of this scale set for 2 s: longer than the 300 ms deadline.
    "slow": vmss_id("slow-pool", 0),
}

CHECKS = ["exists-by-provider-id", "exists-by-node", "shutdown-by-provider-id",
          "shutdown-by-node", "metadata-not-found", "metadata", "instances-exist-batch",
          "unknown-method-unimplemented", "unknown-service-unimplemented", "deadline-exceeded",
          "oversized-request-resource-exhausted", "connection-survives-errors",
          "concurrent-calls-one-connection", "health-check", "health-check-unknown-service",
          "health-watch-first-message"]


def passed(result) -> set[str]:
    return {line.split()[1].rstrip(":") for line in result.stdout.splitlines()
            if line.startswith("PASS ")}


def test_every_grpc_go_check_passes_against_vmssd(deployment, interop):
    d = deployment()
    d.fake.fault("list_vmss_vms", kind="hang", seconds=2, match="/slow-pool/", count=100)

    result = interop(d.daemon.socket, EXPECTATIONS, "-concurrency", "200")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and "SKIP" not in result.stdout
    assert passed(result) == set(CHECKS)
    # One listing per scale set (pool, power, no-such-pool's 404, slow-pool), one scale-set list
    # for the name lookup, one NIC read per instance asked for metadata, one VM and its NIC.
    counts = d.fake.counts()
    assert {k: counts[k] for k in ("list_vmss_vms", "list_vmss", "list_vmss_vm_nics", "get_vm",
                                   "get_nic")} == {
        "list_vmss_vms": 4, "list_vmss": 1, "list_vmss_vm_nics": 2, "get_vm": 1, "get_nic": 1}
    stats = d.api.stats()
    assert stats.gone_hits >= 1


def test_grpc_go_with_the_socket_path_as_authority(deployment, interop):
    d = deployment()
    path = str(d.daemon.socket)
    want = {"exists": [vmss_id("pool", 0)], "gone": [vmss_id("pool", 30)]}
    skip = "-skip=oversized-request-resource-exhausted,concurrent-calls-one-connection"

    for authority in (path, urllib.parse.quote(path, safe="")):
        result = interop(d.daemon.socket, want, "-authority", authority, skip)
        assert result.returncode == 0, f"{authority}:\n{result.stdout}{result.stderr}"
        assert {"exists-by-provider-id", "instances-exist-batch", "health-check"} <= passed(result)

    assert d.fake.counts()["list_vmss_vms"] == 1


def test_grpc_go_on_an_abstract_socket(deployment, interop):
    name = f"vmssd-go-{os.getpid()}-{time.monotonic_ns()}"
    d = deployment(socket_name="@" + name)
    want = {"exists": [vmss_id("pool", 0)], "gone": [vmss_id("pool", 30)]}

    # The checker dials "unix" with the given name; Go spells an abstract address "@name".
    result = interop("@" + name, want, "-skip=oversized-request-resource-exhausted")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "concurrent-calls-one-connection" in passed(result)
    assert d.fake.counts()["list_vmss_vms"] == 1


def test_grpc_go_health_watch_sees_serving_then_not_serving_on_sigterm(deployment,
                                                                      interopclient_binary):
    d = deployment("--drain-timeout", "3")
    watcher = subprocess.Popen(
        [str(interopclient_binary), "-socket", str(d.daemon.socket), "-watch", "-timeout", "20s"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=loopback_env())
    try:
        assert watcher.stdout.readline().strip() == "WATCH SERVING"
        d.daemon.process.send_signal(signal.SIGTERM)
        rest, _ = watcher.communicate(timeout=15)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()

    assert rest.splitlines()[0] == "WATCH NOT_SERVING", rest
    assert rest.splitlines()[-1].startswith("WATCH END"), rest
    assert d.daemon.process.wait(10) == 0
    d.daemon.stopped = True
    assert not d.daemon.socket.exists()
