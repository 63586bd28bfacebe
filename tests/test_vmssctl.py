"""vmssctl prints what README's "Querying it" says, with the exit statuses scripts rely on."""

from __future__ import annotations

import json
import time

from helpers import RG, SUB, computer_name, vmss_id


def test_vmssctl_outputs_and_exit_statuses(deployment, vmssctl):
    d = deployment()
    socket = d.daemon.socket

    def run(*args):
        result = vmssctl(socket, *args)
        return result.returncode, result.stdout.strip(), result.stderr.strip()

    assert run("exists", vmss_id("pool", 1)) == (0, "true", "")
    assert run("exists", vmss_id("pool", 60)) == (1, "false", "")
    assert run("shutdown", vmss_id("power", 0)) == (0, "true", "")
    assert run("shutdown", vmss_id("power", 2)) == (1, "false", "")
    status, out, err = run("exists", "")
    assert (status, out) == (3, "") and err.startswith("error: FAILED_PRECONDITION: ")
    status, out, _ = run("metadata", "--node", computer_name("pool", 4))
    assert status == 0 and json.loads(out) == {
        "providerID": vmss_id("pool", 4), "instanceType": "Standard_D4s_v5",
        "zone": "westeurope-2", "region": "westeurope",
        "nodeAddresses": [{"type": "Hostname", "address": "pool000004"},
                          {"type": "InternalIP", "address": "10.240.0.8"}]}
    status, out, _ = run("exists-all", vmss_id("pool", 1), "azure:///bad")
    lines = out.splitlines()
    assert status == 0 and lines[0] == f"{vmss_id('pool', 1)} true OK"
    # A verdict that failed is no answer: "unknown", never "false" (which reaps the node).
    assert lines[1].startswith("azure:///bad unknown INVALID_ARGUMENT ")
    assert run("health") == (0, "SERVING", "")
    status, out, err = run("health", "no.such.Service")
    assert (status, out) == (3, "") and err.startswith("error: NOT_FOUND: ")
    status, out, _ = run("stats")
    assert status == 0
    # Hits: pool/60, power/2, the empty ID, pool/1 again; misses: pool/1, power/0, metadata.
    assert out.splitlines()[:7] == ["hits 4", "misses 3", "gone_hits 0", "coalesced_waiters 0",
                                    "refreshes 0", "stale_serves 0", "entries 3"]
    assert 'arm_calls{operation="list_vmss_vms",outcome="ok"} 2' in out
    assert run("invalidate", SUB, RG, "pool") == (0, "removed 1", "")
    assert run("invalidate") == (0, "removed 2", "")
    # Usage errors: one line saying what was wrong, then the usage text; nothing is asked.
    expected = "vmssctl: {}: {} argument, expected: {}"
    for args, first in [
        (("bogus",), "vmssctl: unknown command bogus"),
        (("metadata", "--node"), expected.format("metadata", "missing", "metadata --node NAME")),
        (("metadata", "a", "b"), expected.format("metadata", "extra", "metadata PROVIDER-ID")),
        (("exists",), expected.format("exists", "missing", "exists PROVIDER-ID")),
        (("shutdown", "a", "b"), expected.format("shutdown", "extra", "shutdown PROVIDER-ID")),
        (("exists-all",), expected.format("exists-all", "missing", "exists-all PROVIDER-ID...")),
        (("stats", "x"), expected.format("stats", "extra", "stats")),
        (("health", "a", "b"), expected.format("health", "extra", "health [SERVICE]")),
        (("invalidate", SUB), "vmssctl: invalidate: wrong number of arguments, "
                              "expected: invalidate [SUB RG VMSS]"),
    ]:
        status, out, err = run(*args)
        assert (status, out) == (2, ""), args
        usage = "usage: vmssctl --socket PATH [--timeout SECONDS] COMMAND [ARGS]"
        assert err.splitlines()[:2] == [first, usage], args
    missing = socket.parent / "nothing-here.sock"
    result = vmssctl(missing, "exists", vmss_id("pool", 1))
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr.strip() == (f"error: UNAVAILABLE: cannot connect to {missing}: "
                                     "No such file or directory (errno 2)")

    # A node name no Kubernetes node can have is refused at once, without echoing it back.
    started = time.monotonic()
    status, out, err = run("--timeout", "5", "metadata", "--node", "z" * 70000)
    assert time.monotonic() - started < 3
    assert (status, out) == (3, "") and err.startswith("error: INVALID_ARGUMENT: ")
    assert "at most 253" in err and len(err.encode()) < 200

    d.fake.fault("list_vmss_vms", status=429, retryAfter=9, count=10)
    status, out, err = run("exists", vmss_id("pool", 1))
    assert (status, out) == (3, "")
    assert err.startswith("error: UNAVAILABLE: ") and "(retry in " in err
    assert d.fake.counts()["list_vmss_vms"] == 3
    status, out, _ = run("exists-all", vmss_id("pool", 1))
    assert status == 0 and out.startswith(f"{vmss_id('pool', 1)} unknown UNAVAILABLE ")

