"""vmssd against a misbehaving Azure: throttling storms, server errors, hangs, resets, broken
bodies, a failing token endpoint and tokens that expire mid-run.

Every test pins two things: what the caller sees (a verdict, or a gRPC status that is not a
verdict) and how many ARM calls the fake Azure counted, so a retry loop or a gate that leaks
shows up as a number. The rule under all of them: no fault ever turns into `exists=false`;
only a deleted scale set (positive evidence) may.
"""

from __future__ import annotations

import time

import grpc
import pytest

SUB, RG = "sub-1", "rg-1"
PREFIX = f"azure:///subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/"
POOL_3 = PREFIX + "virtualMachineScaleSets/pool/virtualMachines/3"
STOPPED_0 = PREFIX + "virtualMachineScaleSets/stopped/virtualMachines/0"
SOLO = PREFIX + "virtualMachines/solo"
INVENTORY = {
    "tokenLifetimeSeconds": 3600,
    "credentials": {
        "tenantId": "tenant-1",
        "clientSecrets": [{"clientId": "client-1", "clientSecret": "s3cr3t-value"}],
    },
    "subscriptions": {SUB: {"resourceGroups": {RG: {
        "location": "westeurope",
        "scaleSets": [
            {"name": "pool", "capacity": 5},
            {"name": "stopped", "vms": [{"instanceId": "0", "powerState": "deallocated"}]},
            {"name": "doomed", "capacity": 2},
        ],
        "virtualMachines": [{"name": "solo"}],
    }}}},
}
CLIENT_TIMEOUT = 15


class Asker:
    """A grpcio client for the Instances service that records every answer it gets."""

    def __init__(self, channel, stubs):
        self.pb = stubs.instances_pb2
        self.stub = stubs.instances_pb2_grpc.InstancesStub(channel)
        self.admin = stubs.instances_pb2_grpc.AdminStub(channel)
        self.false_verdicts: list[str] = []

    def exists(self, provider_id: str, timeout: float = CLIENT_TIMEOUT):
        """True/False, or the grpc.StatusCode of a failed call."""
        try:
            reply = self.stub.InstanceExistsByProviderID(
                self.pb.ProviderIDRequest(provider_id=provider_id), timeout=timeout)
        except grpc.RpcError as error:
            return error.code()
        if not reply.exists:
            self.false_verdicts.append(provider_id)
        return reply.exists

    def exists_error(self, provider_id: str):
        """The failed call's error (code, details, trailing metadata); fails if it succeeded."""
        try:
            reply = self.stub.InstanceExistsByProviderID(
                self.pb.ProviderIDRequest(provider_id=provider_id), timeout=CLIENT_TIMEOUT)
        except grpc.RpcError as error:
            return error
        pytest.fail(f"expected an error for {provider_id}, got exists={reply.exists}")

    def invalidate(self):
        self.admin.Invalidate(self.pb.InvalidateRequest(), timeout=CLIENT_TIMEOUT)


@pytest.fixture
def setup(fake_azure_factory, vmssd, unix_channel, stubs):
    """Starts the fake with INVENTORY and vmssd with the given flags and azure.json updates."""

    def start(*flags: str, cloud_config: dict | None = None, wait_serving: bool = True):
        fake = fake_azure_factory(INVENTORY)
        daemon = vmssd(*flags, fake=fake, cloud_config=cloud_config)
        asker = Asker(unix_channel(daemon.socket), stubs)
        if wait_serving:
            wait_for_serving(unix_channel(daemon.socket), stubs)
        fake.control("POST", "counts/reset")
        return fake, daemon, asker

    return start


def wait_for_serving(channel, stubs, timeout: float = 15):
    health = stubs.health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reply = health.Check(stubs.health_pb2.HealthCheckRequest(service=""), timeout=2)
            if reply.status == stubs.health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.05)
    pytest.fail("vmssd never reported SERVING")


def counts(fake) -> dict[str, int]:
    return fake.control("GET", "counts")


def fault(fake, operation: str, **spec):
    fake.control("POST", "faults", {"operation": operation, **spec})


def test_a_429_storm_without_retry_after_costs_one_call_and_no_false(setup):
    fake, _, asker = setup()
    fault(fake, "list_vmss_vms", status=429, count=1000)

    answers = [asker.exists(POOL_3) for _ in range(20)]
    answers += [asker.exists(STOPPED_0) for _ in range(5)]

    assert set(answers) == {grpc.StatusCode.UNAVAILABLE}, answers
    # The first 429 closes the gate for the default 30 s; nothing else reaches ARM.
    assert counts(fake)["list_vmss_vms"] == 1
    assert asker.false_verdicts == []


def test_a_429_with_retry_after_holds_the_gate_exactly_that_long(setup):
    fake, _, asker = setup()
    fault(fake, "list_vmss_vms", status=429, retryAfter=2, count=1000)

    error = asker.exists_error(POOL_3)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    pushback = dict(error.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
    assert pushback is not None and 1000 <= int(pushback) <= 2100, pushback
    started = time.monotonic()
    while time.monotonic() - started < 1.2:
        assert asker.exists(POOL_3) == grpc.StatusCode.UNAVAILABLE
        time.sleep(0.1)
    assert counts(fake)["list_vmss_vms"] == 1

    fake.control("DELETE", "faults")
    time.sleep(max(0.0, 2.3 - (time.monotonic() - started)))
    assert asker.exists(POOL_3) is True
    assert counts(fake)["list_vmss_vms"] == 2
    assert asker.false_verdicts == []


def test_a_429_with_an_http_date_retry_after_is_honoured(setup):
    fake, _, asker = setup()
    fault(fake, "list_vmss_vms", status=429, retryAfter="date:3", count=1000)

    assert [asker.exists(POOL_3) for _ in range(10)] == [grpc.StatusCode.UNAVAILABLE] * 10
    assert counts(fake)["list_vmss_vms"] == 1
    assert asker.false_verdicts == []


def test_500s_are_retried_a_bounded_number_of_times_then_fail_without_false(setup):
    fake, _, asker = setup(cloud_config={"cloudProviderBackoffRetries": 2})
    fault(fake, "list_vmss_vms", status=500, count=1000)

    assert asker.exists(POOL_3) == grpc.StatusCode.UNAVAILABLE
    assert counts(fake)["list_vmss_vms"] == 3  # the call and two retries

    fake.control("DELETE", "faults")
    fake.control("POST", "counts/reset")
    fault(fake, "list_vmss_vms", status=503, count=2)
    assert asker.exists(POOL_3) is True
    assert counts(fake)["list_vmss_vms"] == 3  # two 503s, then the listing
    assert asker.false_verdicts == []


def test_a_hang_past_the_request_timeout_is_an_error_not_a_verdict(setup):
    fake, _, asker = setup("--arm-timeout", "1", cloud_config={"cloudProviderBackoffRetries": 0})
    fault(fake, "list_vmss_vms", kind="hang", seconds=3, count=1)

    started = time.monotonic()
    answer = asker.exists(POOL_3)
    elapsed = time.monotonic() - started
    assert answer in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), answer
    assert elapsed < 2.5, f"the 1 s ARM timeout took {elapsed:.1f} s"
    assert counts(fake)["list_vmss_vms"] == 1

    assert asker.exists(POOL_3) is True
    assert counts(fake)["list_vmss_vms"] == 2
    assert asker.false_verdicts == []


def test_connection_resets_are_retried_a_bounded_number_of_times_and_never_read_as_gone(setup):
    fake, _, asker = setup(cloud_config={"cloudProviderBackoffRetries": 1})
    fault(fake, "list_vmss_vms", kind="reset", count=1000)
    assert asker.exists(POOL_3) == grpc.StatusCode.UNAVAILABLE
    # One call and one retry; libcurl itself resends once a request whose reused keep-alive
    # connection died before any answer, so each attempt may reach the server twice.
    assert 2 <= counts(fake)["list_vmss_vms"] <= 4

    fake.control("DELETE", "faults")
    fake.control("POST", "counts/reset")
    fault(fake, "list_vmss_vms", kind="reset", count=1)
    assert asker.exists(POOL_3) is True
    assert counts(fake)["list_vmss_vms"] == 2
    assert asker.false_verdicts == []


def test_a_broken_body_is_an_error_and_is_not_cached(setup):
    fake, _, asker = setup()
    fault(fake, "list_vmss_vms", kind="broken", count=1)
    assert asker.exists(POOL_3) == grpc.StatusCode.UNAVAILABLE
    assert counts(fake)["list_vmss_vms"] == 1

    assert asker.exists(POOL_3) is True
    assert counts(fake)["list_vmss_vms"] == 2
    assert asker.false_verdicts == []


@pytest.mark.parametrize("status,code", [
    (404, "SubscriptionNotFound"), (404, "InvalidResourceType"), (403, "AuthorizationFailed"),
    (400, "InvalidApiVersionParameter"),
])
def test_a_404_or_403_without_a_gone_code_is_no_evidence_of_deletion(setup, status, code):
    fake, _, asker = setup()
    fault(fake, "list_vmss_vms", status=status, code=code, count=1000)
    fault(fake, "get_vm", status=status, code=code, count=1000)

    assert asker.exists(POOL_3) not in (True, False)
    assert asker.exists(SOLO) not in (True, False)
    assert counts(fake)["list_vmss_vms"] == 1
    assert counts(fake)["get_vm"] == 1
    assert asker.false_verdicts == []


def test_a_body_of_another_shape_is_never_read_as_an_empty_scale_set(setup):
    fake, _, asker = setup()
    for body in ['{"value":{}}', '{"nothing":[]}', "[]", ""]:
        fault(fake, "list_vmss_vms", kind="body", body=body, count=1)
        answer = asker.exists(POOL_3)
        assert answer is not False, f"{body!r} answered false"
    assert asker.false_verdicts == []


def test_only_a_deleted_scale_set_answers_false(setup):
    fake, _, asker = setup()
    fake.control("DELETE", "scalesets", {"subscription": SUB, "resourceGroup": RG,
                                         "scaleSet": "doomed", "delay": 0})
    doomed = PREFIX + "virtualMachineScaleSets/doomed/virtualMachines/0"
    assert asker.exists(doomed) is False
    assert asker.exists(doomed) is False
    assert counts(fake)["list_vmss_vms"] == 1  # the second answer came from the negative entry


def test_a_failing_token_endpoint_is_unavailable_and_costs_no_arm_call(setup):
    fake, daemon, asker = setup(wait_serving=False)
    fault(fake, "token_aad", status=500, count=1000)
    asker.invalidate()
    fake.control("POST", "tokens/expire")
    fake.control("POST", "counts/reset")

    answers = [asker.exists(PREFIX + f"virtualMachineScaleSets/pool/virtualMachines/{i}")
               for i in range(3)]
    assert all(a not in (True, False) for a in answers), answers
    # An expired token is refused by ARM once, renewal fails, and no further listing is tried
    # without a token.
    assert counts(fake)["list_vmss_vms"] <= 3
    assert counts(fake)["token_aad"] >= 1
    assert asker.false_verdicts == []

    fake.control("DELETE", "faults")
    deadline = time.monotonic() + 10
    while asker.exists(POOL_3) is not True:
        assert time.monotonic() < deadline, "never recovered after the token endpoint came back"
        time.sleep(0.2)
    assert asker.false_verdicts == []


def test_a_token_refused_at_start_keeps_vmssd_not_serving_and_answerless(
        fake_azure_factory, vmssd, unix_channel, stubs):
    fake = fake_azure_factory(INVENTORY)
    fault(fake, "token_aad", status=401, code="invalid_client", count=1000)
    daemon = vmssd(fake=fake)
    asker = Asker(unix_channel(daemon.socket), stubs)
    health = stubs.health_pb2_grpc.HealthStub(unix_channel(daemon.socket))
    reply = health.Check(stubs.health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status != stubs.health_pb2.HealthCheckResponse.SERVING
    assert asker.exists(POOL_3) not in (True, False)
    assert counts(fake)["list_vmss_vms"] == 0
    assert asker.false_verdicts == []


def test_a_token_that_expires_mid_run_is_renewed_once(setup):
    fake, _, asker = setup()
    assert asker.exists(POOL_3) is True
    assert counts(fake) | {} == counts(fake)
    before = counts(fake)
    assert before["list_vmss_vms"] == 1

    fake.control("POST", "tokens/expire")
    asker.invalidate()
    assert asker.exists(POOL_3) is True
    assert asker.exists(STOPPED_0) is True
    after = counts(fake)
    assert after["token_aad"] - before["token_aad"] == 1
    # One listing refused with 401, its retry with the new token, and the second scale set.
    assert after["list_vmss_vms"] == 4
    assert asker.false_verdicts == []


NEXT_LINK_BASE = ("{base}/subscriptions/" + SUB + "/resourceGroups/" + RG
                  + "/providers/Microsoft.Compute/virtualMachineScaleSets/")


@pytest.mark.parametrize("other,deleted", [("doomed", False), ("doomed", True)],
                         ids=["a-live-set", "a-deleted-set"])
def test_a_next_link_to_another_scale_set_is_unavailable_never_false(setup, other, deleted):
    """A first page of pool whose nextLink names another scale set (one that lists other VMs,
    or one deleted, which would answer 404) must neither merge that set's VMs into pool's
    listing nor read its 404 as pool being gone."""
    fake, _, asker = setup()
    if deleted:
        fake.control("DELETE", "scalesets", {"subscription": SUB, "resourceGroup": RG,
                                             "scaleSet": other, "delay": 0})
    link = NEXT_LINK_BASE + other + "/virtualMachines?$expand=instanceView&api-version=2024-07-01"
    fault(fake, "list_vmss_vms", kind="body", status=200, count=1,
          body='{"value":[],"nextLink":"%s"}' % link)
    assert asker.exists(POOL_3) == grpc.StatusCode.UNAVAILABLE
    assert counts(fake)["list_vmss_vms"] == 1  # the foreign link was never followed
    assert asker.exists(POOL_3) is True
    assert asker.false_verdicts == []


def test_a_gone_answer_to_a_later_page_is_unavailable_never_false(setup):
    fake, _, asker = setup()
    fake.control("POST", "config", {"pageSize": 2})
    fault(fake, "list_vmss_vms", status=404, code="ResourceNotFound", match="skiptoken",
          count=1000)
    assert asker.exists(POOL_3) == grpc.StatusCode.UNAVAILABLE
    assert counts(fake)["list_vmss_vms"] == 2
    assert asker.false_verdicts == []
