"""What an operator sees of a running vmssd: /metrics, /healthz and /readyz, gRPC health, server
reflection and the log lines, all against the real binary and the fake Azure on loopback."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

POOL_ID = ("azure:///subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/"
           "virtualMachineScaleSets/pool/virtualMachines/{}")
GONE_ID = ("azure:///subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/"
           "virtualMachineScaleSets/no-such-set/virtualMachines/0")
EXISTS_METHOD = "/cloudprovider.instances.v1.Instances/InstanceExistsByProviderID"

FAMILIES = {
    "vmssd_rpc_requests": "counter",
    "vmssd_rpc_duration_seconds": "histogram",
    "vmssd_cache_hits": "counter",
    "vmssd_cache_misses": "counter",
    "vmssd_cache_gone_hits": "counter",
    "vmssd_cache_coalesced_waiters": "counter",
    "vmssd_cache_refreshes": "counter",
    "vmssd_cache_stale_serves": "counter",
    "vmssd_cache_entries": "gauge",
    "vmssd_cache_reads_in_flight": "gauge",
    "vmssd_arm_requests": "counter",
    "vmssd_throttle_gate_open": "gauge",
    "vmssd_throttle_gate_seconds_until_open": "gauge",
    "vmssd_token_renewals": "counter",
    "vmssd_ready": "gauge",
}


def http_get(port: int, path: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metrics_port(instance, timeout: float = 10.0) -> int:
    """The port vmssd reports in its "serving metrics" line (text or JSON)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in instance.log().splitlines():
            if "serving metrics" not in line:
                continue
            if line.startswith("{"):
                return int(json.loads(line)["port"])
            return int(re.search(r"\bport=(\d+)", line).group(1))
        time.sleep(0.02)
    pytest.fail(f"no metrics port in the log:\n{instance.log()}")


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def scrape(port: int) -> dict[str, dict]:
    """family name -> {"type": ..., "samples": {(sample name, sorted labels): value}}."""
    status, text = http_get(port, "/metrics")
    assert status == 200
    families = {}
    for family in text_string_to_metric_families(text):
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        families[family.name] = {"type": family.type, "samples": samples}
    return families


def sample(families, family: str, name: str | None = None, **labels) -> float:
    key = (name or family, tuple(sorted(labels.items())))
    return families[family]["samples"].get(key, 0.0)


def exists(stubs, channel, provider_id: str):
    stub = stubs.instances_pb2_grpc.InstancesStub(channel)
    return stub.InstanceExistsByProviderID(
        stubs.instances_pb2.ProviderIDRequest(provider_id=provider_id), timeout=15)


def health_status(stubs, channel) -> int:
    stub = stubs.health_pb2_grpc.HealthStub(channel)
    return stub.Check(stubs.health_pb2.HealthCheckRequest(service=""), timeout=5).status


def test_metrics_has_every_family_and_counters_move_with_calls(vmssd, stubs, unix_channel):
    instance = vmssd("--metrics-address", "127.0.0.1:0")
    port = metrics_port(instance)
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="/readyz 200")
    channel = unix_channel(instance.socket)

    before = scrape(port)
    assert exists(stubs, channel, POOL_ID.format(1)).exists is True
    assert exists(stubs, channel, POOL_ID.format(2)).exists is True
    assert exists(stubs, channel, GONE_ID).exists is False
    assert exists(stubs, channel, GONE_ID).exists is False
    with pytest.raises(grpc.RpcError) as refused:
        exists(stubs, channel, "azure://not-three-slashes")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(port)

    for name, kind in FAMILIES.items():
        assert after.get(name, {}).get("type") == kind, f"{name} missing or not a {kind}"
    ok = dict(method=EXISTS_METHOD, code="OK")
    assert sample(before, "vmssd_rpc_requests", "vmssd_rpc_requests_total", **ok) == 0
    assert sample(after, "vmssd_rpc_requests", "vmssd_rpc_requests_total", **ok) == 4
    invalid = dict(method=EXISTS_METHOD, code="INVALID_ARGUMENT")
    assert sample(after, "vmssd_rpc_requests", "vmssd_rpc_requests_total", **invalid) == 1
    assert sample(after, "vmssd_rpc_duration_seconds", "vmssd_rpc_duration_seconds_count",
                  method=EXISTS_METHOD) == 5
    assert sample(after, "vmssd_rpc_duration_seconds", "vmssd_rpc_duration_seconds_sum",
                  method=EXISTS_METHOD) > 0
    assert sample(after, "vmssd_cache_misses", "vmssd_cache_misses_total") == 2
    assert sample(after, "vmssd_cache_hits", "vmssd_cache_hits_total") >= 1
    assert sample(after, "vmssd_cache_gone_hits", "vmssd_cache_gone_hits_total") >= 1
    assert sample(after, "vmssd_cache_entries") >= 2
    assert sample(after, "vmssd_arm_requests", "vmssd_arm_requests_total",
                  operation="list_vmss_vms", outcome="ok") == 1
    assert sample(after, "vmssd_arm_requests", "vmssd_arm_requests_total",
                  operation="list_vmss_vms", outcome="gone") == 1
    assert sample(after, "vmssd_token_renewals", "vmssd_token_renewals_total") >= 1
    assert sample(after, "vmssd_throttle_gate_open", subscription="sub-1") == 1
    assert sample(after, "vmssd_throttle_gate_seconds_until_open", subscription="sub-1") == 0
    assert sample(after, "vmssd_ready") == 1


def test_an_unknown_method_counts_as_other_without_growing_the_labels(vmssd, unix_channel):
    instance = vmssd("--metrics-address", "127.0.0.1:0")
    port = metrics_port(instance)
    channel = unix_channel(instance.socket)

    for index in range(3):
        call = channel.unary_unary(f"/x.Y/Random{index}")
        with pytest.raises(grpc.RpcError) as error:
            call(b"", timeout=5)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED

    families = scrape(port)
    methods = {dict(labels)["method"] for (_, labels) in families["vmssd_rpc_requests"]["samples"]}
    assert "other" in methods
    assert not any(m.startswith("/x.Y") for m in methods)
    assert sample(families, "vmssd_rpc_requests", "vmssd_rpc_requests_total",
                  method="other", code="UNIMPLEMENTED") == 3


def test_readyz_waits_for_a_token_and_health_follows(fake_azure, vmssd, stubs, unix_channel):
    # The first token requests fail, so vmssd starts without one and retries after a second.
    fake_azure.control("POST", "faults", {"operation": "token", "status": 401, "count": 2})
    instance = vmssd("--metrics-address", "127.0.0.1:0")
    port = metrics_port(instance)
    channel = unix_channel(instance.socket)

    status, reason = http_get(port, "/readyz")
    grpc_status = health_status(stubs, channel)
    assert http_get(port, "/healthz") == (200, "ok")
    assert status == 503, reason
    assert "token" in reason
    assert grpc_status == stubs.health_pb2.HealthCheckResponse.NOT_SERVING

    wait_for(lambda: http_get(port, "/readyz")[0] == 200, timeout=15, what="/readyz 200")
    assert health_status(stubs, channel) == stubs.health_pb2.HealthCheckResponse.SERVING
    assert sample(scrape(port), "vmssd_ready") == 1


def test_readyz_says_draining_while_a_call_finishes_after_sigterm(fake_azure, vmssd, stubs,
                                                                   unix_channel):
    instance = vmssd("--metrics-address", "127.0.0.1:0", "--drain-timeout", "10")
    port = metrics_port(instance)
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, what="/readyz 200")
    channel = unix_channel(instance.socket)
    updates = []
    watch = stubs.health_pb2_grpc.HealthStub(channel).Watch(
        stubs.health_pb2.HealthCheckRequest(service=""), timeout=30)
    watcher = threading.Thread(target=lambda: updates.extend(u.status for u in watch_iter(watch)))
    watcher.start()
    wait_for(lambda: updates, what="the first Watch update")
    # The listing hangs for three seconds, so the call is in flight when SIGTERM arrives.
    fake_azure.control("POST", "faults",
                       {"operation": "list_vmss_vms", "kind": "hang", "seconds": 3, "count": 1})
    answers = []
    caller = threading.Thread(target=lambda: answers.append(exists(stubs, channel, POOL_ID.format(5))))
    caller.start()
    wait_for(lambda: fake_azure.control("GET", "counts").get("list_vmss_vms", 0) >= 1,
             what="the listing to start")

    instance.process.send_signal(15)
    status, reason = wait_for(
        lambda: (lambda r: r if r[0] == 503 else None)(http_get(port, "/readyz")),
        what="/readyz 503")
    healthz = http_get(port, "/healthz")
    caller.join(15)
    watcher.join(15)

    assert "draining" in reason
    assert healthz == (200, "ok")
    assert answers and answers[0].exists is True
    serving = stubs.health_pb2.HealthCheckResponse
    assert updates[:2] == [serving.SERVING, serving.NOT_SERVING]
    assert instance.process.wait(20) == 0
    instance.stopped = True


def watch_iter(watch):
    try:
        yield from watch
    except grpc.RpcError:
        return


def test_metrics_are_off_unless_asked_for(vmssd):
    instance = vmssd()
    time.sleep(0.3)
    assert "serving metrics" not in instance.log()


def test_a_metrics_address_that_cannot_be_bound_stops_the_start(vmssd_binary, fake_azure, short_tmp):
    import subprocess
    import socket as pysocket

    from conftest import loopback_env

    taken = pysocket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config = short_tmp / "azure.json"
    config.write_text(json.dumps(fake_azure.cloud_config()))
    try:
        result = subprocess.run(
            [str(vmssd_binary), "--socket", str(short_tmp / "s.sock"), "--cloud-config",
             str(config), "--arm-endpoint", fake_azure.url, "--aad-endpoint", fake_azure.url,
             "--metrics-address", f"127.0.0.1:{taken.getsockname()[1]}"],
            capture_output=True, text=True, timeout=20, env=loopback_env())
    finally:
        taken.close()
    assert result.returncode == 1
    assert "metrics" in result.stderr
    assert not (short_tmp / "s.sock").exists()


def test_reflection_lists_services_and_a_call_works_from_its_descriptors(vmssd, unix_channel):
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message_factory import GetMessageClass
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    instance = vmssd()
    channel = unix_channel(instance.socket)
    database = ProtoReflectionDescriptorDatabase(channel)

    services = database.get_services()
    pool = DescriptorPool(database)
    service = pool.FindServiceByName("cloudprovider.instances.v1.Instances")
    method = service.methods_by_name["InstanceExistsByProviderID"]
    request_type = GetMessageClass(method.input_type)
    response_type = GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{service.full_name}/{method.name}",
        request_serializer=request_type.SerializeToString,
        response_deserializer=response_type.FromString)
    answer = call(request_type(provider_id=POOL_ID.format(3)), timeout=15)

    assert "cloudprovider.instances.v1.Instances" in services
    assert "cloudprovider.instances.v1.Admin" in services
    assert "grpc.health.v1.Health" in services
    assert {m.name for m in service.methods} >= {
        "InstanceExistsByProviderID", "InstanceShutdownByProviderID", "InstanceMetadata",
        "InstancesExist"}
    assert answer.exists is True
    with pytest.raises(KeyError):
        pool.FindMessageTypeByName("cloudprovider.instances.v1.NoSuchMessage")


def test_reflection_v1_answers_before_the_client_half_closes(vmssd, unix_channel):
    from grpc_reflection.v1alpha import reflection_pb2

    instance = vmssd()
    channel = unix_channel(instance.socket)
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    requests = []
    condition = threading.Condition()

    def request_iterator():
        # Yields each request only after the previous answer arrived; never half-closes early.
        for index, request in enumerate([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.Such"),
            reflection_pb2.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto"),
        ]):
            with condition:
                condition.wait_for(lambda: len(requests) >= index, timeout=10)
            yield request

    responses = call(request_iterator(), timeout=20)
    answers = []
    for response in responses:
        answers.append(response)
        with condition:
            requests.append(response)
            condition.notify_all()

    assert len(answers) == 3
    assert any(s.name == "grpc.health.v1.Health" for s in answers[0].list_services_response.service)
    assert answers[1].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert len(answers[2].file_descriptor_response.file_descriptor_proto) == 1


def test_v2_json_logs_carry_one_parseable_line_per_call_and_no_secret(vmssd, stubs, unix_channel):
    instance = vmssd("-v", "2", "--log-format", "json")
    channel = unix_channel(instance.socket)
    wait_for(lambda: health_status(stubs, channel) == stubs.health_pb2.HealthCheckResponse.SERVING,
             what="SERVING")

    exists(stubs, channel, POOL_ID.format(7))
    exists(stubs, channel, POOL_ID.format(7))
    exists(stubs, channel, GONE_ID)
    time.sleep(0.2)
    lines = [json.loads(line) for line in instance.log().splitlines() if line.strip()]

    for line in lines:
        assert {"ts", "level", "msg"} <= line.keys()
    rpcs = [line for line in lines if line["msg"] == "rpc"]
    assert len(rpcs) == 3
    for line in rpcs:
        assert {"method", "provider_id", "verdict", "cache", "arm_calls", "duration_us"} <= line.keys()
        assert isinstance(line["arm_calls"], int) and isinstance(line["duration_us"], int)
    assert [(r["cache"], r["arm_calls"], r["verdict"]) for r in rpcs] == [
        ("miss", 1, "exists=true"), ("hit", 0, "exists=true"), ("miss", 1, "exists=false")]
    assert rpcs[0]["provider_id"] == POOL_ID.format(7)
    configuration = next(line for line in lines if line["msg"] == "configuration")
    assert configuration["subscription_id"] == "sub-1"
    assert configuration["verbosity"] == 2
    secret = json.loads(Path(instance.config_path).read_text())["aadClientSecret"]
    assert secret and secret not in instance.log()
    assert "redacted" in configuration["credential"]
