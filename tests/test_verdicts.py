"""The verdict rules, end to end: a real vmssd on a temporary socket answering grpcio calls
from the fake Azure over real HTTP. Each test pins the answer (or status) a controller sees and
the exact number of ARM requests it cost, from the fake's per-operation counters and from
Admin/Stats."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from helpers import (RG, SUB, arm_calls_total, computer_name, list_calls, rpc_error, vm_id,
                     vmss_id)

ZERO = {"list_vmss_vms": 0, "get_vm": 0, "list_vmss": 0, "list_vmss_vm_nics": 0, "get_nic": 0}


def delete_scale_set(fake, name: str, delay: float = 0) -> None:
    """Deletes a scale set in the fake: instances go Deleting, then (after `delay`) vanish, and
    the set itself is gone after 2 x `delay`."""
    fake.control("DELETE", "scalesets",
                 {"subscription": SUB, "resourceGroup": RG, "scaleSet": name, "delay": delay})


def create_scale_set(fake, name: str, capacity: int) -> None:
    fake.control("POST", "scalesets", {"subscription": SUB, "resourceGroup": RG, "name": name,
                                       "computerNamePrefix": name, "capacity": capacity})


def test_an_unmanaged_provider_id_exists_without_any_arm_call(deployment):
    d = deployment()

    assert d.api.exists("kind://docker/kind/kind-worker") is True
    assert d.api.exists("aws:///us-east-1a/i-0123456789") is True

    assert arm_calls_total(d.fake.counts()) == 0
    assert d.api.stats().arm_calls == [] or all(
        row.operation == "token" for row in d.api.stats().arm_calls)


def test_an_empty_provider_id_is_failed_precondition(deployment):
    d = deployment()

    error = rpc_error(d.api.exists, "")

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not initialised" in error.details()
    assert arm_calls_total(d.fake.counts()) == 0


@pytest.mark.parametrize("provider_id, fault", [
    (vmss_id("pool", 3).replace("/virtualMachines/", "/virtualMachine/"), '"virtualMachine"'),
    (vmss_id("pool", "").rstrip("/"), "ends early"),
    ("azure:///subscriptions//resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/x",
     "empty"),
    (vmss_id("pool", 3).replace("Microsoft.Compute", "Microsoft.Network"), "Microsoft.Network"),
])
def test_a_malformed_azure_id_is_invalid_argument_naming_the_fault(deployment, provider_id, fault):
    d = deployment()

    error = rpc_error(d.api.exists, provider_id)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fault in error.details()
    assert arm_calls_total(d.fake.counts()) == 0


def test_a_provider_id_holding_a_nul_byte_is_refused_not_answered_for_its_prefix(deployment):
    d = deployment()
    d.api.exists(vmss_id("pool", 3))  # warm: the prefix alone would be answered from the cache
    calls_before = arm_calls_total(d.fake.counts())

    error = rpc_error(d.api.exists, vmss_id("pool", 3) + "\x00/../../virtualMachines/999")

    assert error.code() == grpc.StatusCode.INTERNAL
    assert arm_calls_total(d.fake.counts()) == calls_before


def test_a_lower_cased_provider_id_gets_the_same_verdict_from_the_same_entry(deployment):
    d = deployment()
    original = vmss_id("pool", 7)

    assert d.api.exists(original) is True
    assert d.api.exists(original.lower()) is True
    assert d.api.exists(original.upper().replace("AZURE://", "azure://")) is True
    assert d.api.exists(vmss_id("pool", 99).lower()) is False
    assert d.api.exists(vmss_id("pool", 99)) is False
    assert d.api.exists(vmss_id("pool", "pool_7")) is True, "the <vmss>_<id> spelling"

    assert list_calls(d.fake) == 1
    stats = d.api.stats()
    assert (stats.misses, stats.hits, stats.entries) == (1, 5, 1)


def test_200_concurrent_questions_on_a_cold_scale_set_make_one_listing(deployment):
    # Page size 10 and 25 instances: one listing is 3 pages, however many questions wait on it.
    d = deployment(page_size=10)

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [d.api.exists_future(vmss_id("pool", i % 25)) for i in range(200)]
        answers = [f.result() for f in futures]

    assert all(answer.exists for answer in answers)
    assert list_calls(d.fake) == 3, "one listing (three pages of 10) for 200 questions"
    stats = d.api.stats()
    assert d.api.arm_calls()[("list_vmss_vms", "ok")] == 3
    assert stats.misses + stats.hits == 200
    assert stats.coalesced_waiters + stats.hits == 199


def test_a_deleted_scale_set_polled_by_100_nodes_costs_one_listing_per_negative_ttl(deployment):
    # Compressed clock: the controller's 5 s poll of 100 NotReady nodes becomes 0.8 s and a
    # minute 12 rounds; the negative TTL is 2 s. Each round starts on schedule, 0.4 s away from
    # an expiry either way, so the expected count (one listing every third round) follows from
    # the schedule.
    ttl, period, rounds = 2.0, 0.8, 12
    d = deployment("--negative-cache-ttl", str(ttl))
    nodes = [vmss_id("deleted-pool", i) for i in range(100)]
    started = time.monotonic()
    round_starts = []

    for round_number in range(rounds):
        time.sleep(max(0, started + round_number * period - time.monotonic()))
        round_starts.append(time.monotonic() - started)
        futures = [d.api.exists_future(node) for node in nodes]
        assert not any(f.result().exists for f in futures), f"round {round_number}"
        round_took = time.monotonic() - started - round_starts[-1]
        assert round_took < 0.4, f"round {round_number} took {round_took:.2f}s: too slow to judge"

    expected, expires = 0, -1.0
    for at in round_starts:
        if at >= expires:
            expected, expires = expected + 1, at + ttl
    assert expected == 4
    assert list_calls(d.fake) == expected, f"rounds at {[round(t, 2) for t in round_starts]}"
    assert d.api.arm_calls()[("list_vmss_vms", "gone")] == expected
    naive = rounds * len(nodes)
    print(f"ARM listings: {expected} with the negative cache, {naive} with one list per question")


def test_a_scale_set_deleted_while_cached_answers_false_once_its_listing_expires(deployment):
    # Listing TTL 2 s: both first questions fall well before the refresh-ahead at 1.6 s.
    d = deployment("--listing-ttl", "2")
    node = vmss_id("pool", 4)
    assert d.api.exists(node) is True
    delete_scale_set(d.fake, "pool", delay=0)
    assert d.api.exists(node) is True, "the listing is still in date"

    time.sleep(2.1)

    assert d.api.exists(node) is False
    assert d.api.exists(vmss_id("pool", 5)) is False
    assert list_calls(d.fake) == 2
    calls = d.api.arm_calls()
    assert (calls[("list_vmss_vms", "ok")], calls[("list_vmss_vms", "gone")]) == (1, 1)


@pytest.mark.parametrize("code", ["ParentResourceNotFound", "ResourceNotFound",
                                  "ResourceGroupNotFound", "NotFound"])
def test_each_404_code_that_means_deleted_answers_false(deployment, code):
    d = deployment()
    d.fake.fault("list_vmss_vms", status=404, code=code, count=1)

    assert d.api.exists(vmss_id("pool", 1)) is False
    assert d.api.exists(vmss_id("pool", 2)) is False

    assert list_calls(d.fake) == 1
    assert d.api.stats().gone_hits == 1


def test_a_scale_set_being_deleted_answers_false_from_its_deleting_instances(deployment):
    d = deployment()
    # ParentResourceNotFound comes later; first the listing shows every instance Deleting.
    delete_scale_set(d.fake, "pool", delay=30)

    assert d.api.exists(vmss_id("pool", 1)) is False
    assert d.api.shutdown(vmss_id("pool", 1)) is False

    assert list_calls(d.fake) == 1


def test_a_vm_in_deleting_answers_false(deployment):
    d = deployment()
    d.fake.control("POST", "vms", {"subscription": SUB, "resourceGroup": RG, "scaleSet": "pool",
                                   "instanceId": "6", "provisioningState": "Deleting"})
    d.fake.control("POST", "vms", {"subscription": SUB, "resourceGroup": RG, "name": "solo",
                                   "provisioningState": "Deleting"})

    assert d.api.exists(vmss_id("pool", 6)) is False
    assert d.api.exists(vmss_id("pool", 5)) is True
    assert d.api.exists(vm_id("solo")) is False

    counts = d.fake.counts()
    assert (counts["list_vmss_vms"], counts["get_vm"]) == (1, 1)


def test_a_429_storm_with_a_warm_cache_answers_true_and_never_false(deployment):
    d = deployment("--listing-ttl", "2", "--max-stale", "30")
    nodes = [vmss_id("pool", i) for i in range(25)]
    assert all(d.api.exists(node) for node in nodes)
    d.fake.fault("list_vmss_vms", status=429, retryAfter=30, count=1000)
    time.sleep(2.1)

    for _ in range(4):
        assert all(d.api.exists(node) for node in nodes)
        time.sleep(0.1)

    # One listing, then one request that met the 429; the throttle holds every other read back.
    assert list_calls(d.fake) == 2
    stats = d.api.stats()
    assert stats.stale_serves == 100
    assert d.api.arm_calls()[("list_vmss_vms", "throttled")] == 1


def test_a_429_with_a_cold_cache_is_unavailable_with_a_retry_pushback(deployment):
    d = deployment()
    d.fake.fault("list_vmss_vms", status=429, retryAfter=7, count=1000)

    error = rpc_error(d.api.exists, vmss_id("pool", 1))
    again = rpc_error(d.api.exists, vmss_id("pool", 2))

    assert error.code() == again.code() == grpc.StatusCode.UNAVAILABLE
    pushback = dict(error.trailing_metadata() or ())
    assert "grpc-retry-pushback-ms" in pushback, error.trailing_metadata()
    assert 5000 < int(pushback["grpc-retry-pushback-ms"]) <= 7000
    assert list_calls(d.fake) == 1, "the second question is held back by the throttle"


@pytest.mark.parametrize("fault, requests", [
    ({"status": 403, "count": 1000}, 1),
    ({"status": 500, "count": 1000}, 2),  # one retry, as cloudProviderBackoffRetries says
    ({"kind": "broken", "count": 1000}, 1),
    ({"status": 404, "code": "SubscriptionNotFound", "count": 1000}, 1),
])
def test_arm_failures_are_unavailable_never_false(deployment, fault, requests):
    d = deployment(cloud_config={"cloudProviderBackoffRetries": 1})
    d.fake.fault("list_vmss_vms", **fault)

    error = rpc_error(d.api.exists, vmss_id("pool", 1))

    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    assert list_calls(d.fake) == requests


def test_a_node_recreated_after_its_scale_set_was_remembered_gone_is_not_declared_gone(
        deployment):
    d = deployment()
    node = vmss_id("reborn", 0)
    assert d.api.node_exists(node) is False
    time.sleep(1.1)
    create_scale_set(d.fake, "reborn", capacity=1)
    created = int(time.time())

    assert d.api.node_exists(node, created=created - 3600) is False, "older node: gone entry"
    assert list_calls(d.fake) == 1
    assert d.api.node_exists(node, created=created) is True, "newer node: reread first"
    assert list_calls(d.fake) == 2


def test_the_new_node_grace_keeps_a_young_node_true(deployment):
    d = deployment("--new-node-grace", "60")
    node = vmss_id("not-yet-listed", 0)
    now = int(time.time())

    assert d.api.node_exists(node, created=now) is True
    assert d.api.node_exists(node, created=now - 120) is False
    assert d.api.exists(node) is False

    assert list_calls(d.fake) == 1


def test_shutdown_follows_power_and_provisioning_state(deployment):
    d = deployment()
    table = {
        vmss_id("power", 0): True,   # deallocated
        vmss_id("power", 1): True,   # stopped
        vmss_id("power", 2): False,  # running
        vmss_id("power", 3): False,  # deallocated, but Updating: provisioning not Succeeded
        vmss_id("power", 4): True,   # deallocating
        vmss_id("power", 9): False,  # not there: not shut down
        vm_id("solo"): False,
        vm_id("solo-off"): True,
        "kind://docker/kind/kind-worker": False,
    }

    answers = {provider_id: d.api.shutdown(provider_id) for provider_id in table}

    assert answers == table
    counts = d.fake.counts()
    assert (counts["list_vmss_vms"], counts["get_vm"]) == (1, 2)


def test_metadata_of_a_scale_set_instance_a_standalone_vm_and_a_node_name(deployment):
    d = deployment()

    instance = d.api.metadata(vmss_id("pool", 4))
    solo = d.api.metadata(vm_id("solo"))
    by_name = d.api.metadata(node_name=computer_name("pool", 5))

    assert instance.provider_id == vmss_id("pool", 4)
    assert (instance.instance_type, instance.zone, instance.region) == (
        "Standard_D4s_v5", "westeurope-2", "westeurope")
    assert [(a.type, a.address) for a in instance.node_addresses] == [
        ("Hostname", "pool000004"), ("InternalIP", "10.240.0.8")]
    assert solo.provider_id == vm_id("solo")
    assert (solo.instance_type, solo.zone, solo.region) == (
        "Standard_D2s_v5", "westeurope-2", "westeurope")
    assert [(a.type, a.address) for a in solo.node_addresses] == [
        ("Hostname", "solo"), ("InternalIP", "10.1.0.4")]
    assert by_name.provider_id == vmss_id("pool", 5)
    assert by_name.zone == "westeurope-3"
    assert [(a.type, a.address) for a in by_name.node_addresses] == [
        ("Hostname", "pool000005"), ("InternalIP", "10.240.0.9")]
    counts = d.fake.counts()
    assert {k: counts[k] for k in ZERO} == {"list_vmss_vms": 1, "get_vm": 1, "list_vmss": 1,
                                            "list_vmss_vm_nics": 2, "get_nic": 1}


def test_metadata_of_a_missing_instance_is_not_found(deployment):
    d = deployment()

    missing = rpc_error(d.api.metadata, vmss_id("pool", 77))
    gone_set = rpc_error(d.api.metadata, vmss_id("no-such-pool", 0))
    gone_vm = rpc_error(d.api.metadata, vm_id("no-such-vm"))

    assert missing.code() == gone_set.code() == gone_vm.code() == grpc.StatusCode.NOT_FOUND
    counts = d.fake.counts()
    assert (counts["list_vmss_vms"], counts["get_vm"], counts["list_vmss_vm_nics"]) == (2, 1, 0)


def test_instances_exist_gives_each_id_its_own_verdict_and_code(deployment):
    d = deployment()
    ids = [vmss_id("pool", 1), vmss_id("no-such-pool", 1), vmss_id("pool", 88),
           "azure:///subscriptions/sub-1/bogus", "", "kind://docker/kind/kind-worker"]

    verdicts = d.api.batch(ids)

    got = [(v.provider_id, v.exists, v.code) for v in verdicts]
    assert got == [(ids[0], True, 0), (ids[1], False, 0), (ids[2], False, 0),
                   (ids[3], False, grpc.StatusCode.INVALID_ARGUMENT.value[0]),
                   (ids[4], False, grpc.StatusCode.FAILED_PRECONDITION.value[0]),
                   (ids[5], True, 0)]
    assert verdicts[3].message and verdicts[4].message
    assert list_calls(d.fake) == 2


def test_a_miss_in_an_old_listing_rereads_once_before_answering_false(deployment):
    d = deployment("--refresh-on-miss-interval", "1")
    assert d.api.exists(vmss_id("pool", 0)) is True
    assert d.api.exists(vmss_id("pool", 30)) is False, "fresh listing: no reread"
    assert list_calls(d.fake) == 1
    time.sleep(1.2)
    d.fake.control("POST", "vms", {"subscription": SUB, "resourceGroup": RG, "scaleSet": "pool",
                                   "instanceId": "31"})

    assert d.api.exists(vmss_id("pool", 30)) is False
    assert list_calls(d.fake) == 2
    assert d.api.exists(vmss_id("pool", 31)) is True, "the reread listing has the new VM"
    assert list_calls(d.fake) == 2
    assert d.api.stats().refreshes == 1


def test_admin_invalidate_forces_a_refetch(deployment):
    d = deployment()
    assert d.api.exists(vmss_id("pool", 0)) is True
    assert d.api.exists(vm_id("solo")) is True

    assert d.api.invalidate("pool", SUB, RG) == 1
    assert d.api.exists(vmss_id("pool", 0)) is True
    assert d.api.exists(vm_id("solo")) is True
    assert (list_calls(d.fake), d.fake.counts()["get_vm"]) == (2, 1)
    assert d.api.invalidate() == 2
    assert d.api.exists(vmss_id("pool", 0)) is True
    assert d.api.exists(vm_id("solo")) is True

    assert (list_calls(d.fake), d.fake.counts()["get_vm"]) == (3, 2)


def test_an_expired_token_is_renewed_once_and_the_question_answered(deployment):
    # Page size 10: the listing is three pages, the first of which meets the 401.
    d = deployment(page_size=10)
    d.fake.control("POST", "tokens/expire", {})

    assert d.api.exists(vmss_id("pool", 1)) is True

    counts = d.fake.counts()
    assert (counts["list_vmss_vms"], counts["token_aad"]) == (4, 1)
    calls = d.api.arm_calls()
    assert (calls[("list_vmss_vms", "fault")], calls[("list_vmss_vms", "ok")]) == (1, 3)


def test_a_listing_whose_second_page_fails_is_unavailable_never_a_partial_answer(deployment):
    # Page size 10: instance 1 is on the first page, 15 on the second, 24 on the third.
    d = deployment(page_size=10, cloud_config={"cloudProviderBackoffRetries": 1})
    d.fake.fault("list_vmss_vms", status=500, match="skiptoken=10", count=1000)

    for instance in (1, 15, 24, 30):
        error = rpc_error(d.api.exists, vmss_id("pool", instance))
        assert error.code() == grpc.StatusCode.UNAVAILABLE, instance

    # Each question: the first page, then the second page and its one retry.
    assert list_calls(d.fake) == 4 * 3
    assert d.api.stats().entries == 0


def test_200_concurrent_questions_while_throttled_cost_one_request(deployment):
    d = deployment()
    d.fake.fault("list_vmss_vms", status=429, retryAfter=5, count=1000)

    futures = [d.api.exists_future(vmss_id("pool", i % 25)) for i in range(200)]
    codes = []
    for future in futures:
        try:
            codes.append(future.result().exists)
        except grpc.RpcError as error:
            codes.append(error.code())

    assert codes == [grpc.StatusCode.UNAVAILABLE] * 200
    assert list_calls(d.fake) == 1


def test_the_listing_ttl_comes_from_azure_json_and_bounds_the_listings(deployment):
    d = deployment(cloud_config={"vmssVirtualMachinesCacheTTLInSeconds": 1})

    assert d.api.exists(vmss_id("pool", 1)) is True
    assert d.api.exists(vmss_id("pool", 2)) is True
    assert list_calls(d.fake) == 1
    time.sleep(1.2)
    assert d.api.exists(vmss_id("pool", 1)) is True

    assert list_calls(d.fake) == 2


def test_cache_max_scale_sets_evicts_the_least_recently_used(deployment):
    d = deployment("--cache-max-scale-sets", "1")

    for scale_set in ["pool", "power", "pool", "pool"]:
        assert d.api.exists(vmss_id(scale_set, 1)) is True

    assert list_calls(d.fake) == 3
    assert d.api.stats().entries == 1
