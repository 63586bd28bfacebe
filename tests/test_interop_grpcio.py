"""grpcio (gRPC C-core) against vmssd, unchanged: every Instances method, the status codes the
transport owes a client, limits, concurrency on one connection, health, the `:authority`
spellings C-core and others send, abstract sockets, and HTTP 415 for a non-gRPC content type."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from helpers import Api, computer_name, list_calls, rpc_error, vm_id, vmss_id

def test_every_instances_method_answers(deployment):
    d = deployment()
    pb, stub = d.api.pb, d.api.instances
    node = vmss_id("pool", 2)

    assert stub.InstanceExistsByProviderID(pb.ProviderIDRequest(provider_id=node)).exists
    assert not stub.InstanceShutdownByProviderID(pb.ProviderIDRequest(provider_id=node)).shutdown
    assert stub.InstanceExists(pb.NodeRequest(provider_id=node, node_name="pool000002")).exists
    assert stub.InstanceShutdown(
        pb.NodeRequest(provider_id=vmss_id("power", 0))).shutdown
    metadata = stub.InstanceMetadata(pb.NodeRequest(node_name=computer_name("pool", 2)))
    assert (metadata.provider_id, metadata.zone) == (node, "westeurope-3")
    verdicts = stub.InstancesExist(pb.InstancesExistRequest(
        provider_ids=[node, vmss_id("pool", 50)])).verdicts
    assert [(v.exists, v.code) for v in verdicts] == [(True, 0), (False, 0)]
    assert d.api.stats().entries == 3  # pool, power and the resource group's scale-set list
    counts = d.fake.counts()
    assert (counts["list_vmss_vms"], counts["list_vmss"], counts["list_vmss_vm_nics"]) == (2, 1, 1)


def test_an_unknown_method_or_service_is_unimplemented(deployment, unix_channel):
    d = deployment()
    channel = d.api.channel

    for path in ["/cloudprovider.instances.v1.Instances/NoSuchMethod", "/no.such.v1.Service/X",
                 "/cloudprovider.instances.v1.instances/InstanceExistsByProviderID"]:
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        error = rpc_error(call, b"", timeout=5)
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED, path
    assert d.api.exists(vmss_id("pool", 1)), "the connection survives"


def test_a_handler_slower_than_the_deadline_is_deadline_exceeded(deployment):
    d = deployment()
    d.fake.fault("list_vmss_vms", kind="hang", seconds=2, match="/pool/", count=1)

    started = time.monotonic()
    error = rpc_error(d.api.exists, vmss_id("pool", 1), timeout=0.3)
    elapsed = time.monotonic() - started

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 1.5
    assert d.api.exists(vmss_id("power", 1), timeout=5), "other scale sets are not held up"
    time.sleep(2)
    assert d.api.exists(vmss_id("pool", 1), timeout=5), "the slow listing landed in the cache"
    assert list_calls(d.fake) == 2


def test_a_5_mib_request_is_resource_exhausted(deployment):
    d = deployment()

    error = rpc_error(d.api.exists, "azure:///" + "x" * (5 << 20))

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert d.api.exists(vmss_id("pool", 1)), "the connection survives"
    assert list_calls(d.fake) == 1


def test_200_concurrent_calls_on_one_connection(deployment):
    d = deployment()
    nodes = [vmss_id("pool", i % 25) for i in range(150)] + [vmss_id("power", i % 5)
                                                             for i in range(50)]

    futures = [d.api.exists_future(node) for node in nodes]
    answers = [f.result() for f in futures]

    assert all(answer.exists for answer in answers)
    assert list_calls(d.fake) == 2
    stats = d.api.stats()
    assert stats.hits + stats.misses == 200


def test_health_check_and_watch_then_not_serving_on_sigterm(deployment):
    d = deployment("--drain-timeout", "3")
    hpb = d.api.hpb
    assert d.api.health_status() == hpb.HealthCheckResponse.SERVING
    assert d.api.health_status("cloudprovider.instances.v1.Instances") == \
        hpb.HealthCheckResponse.SERVING
    missing = rpc_error(d.api.health.Check, hpb.HealthCheckRequest(service="no.such.Service"))
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    stream = d.api.health.Watch(hpb.HealthCheckRequest(service=""), timeout=15)
    first = next(stream)
    assert first.status == hpb.HealthCheckResponse.SERVING
    d.daemon.process.send_signal(signal.SIGTERM)
    seen = []
    try:
        for message in stream:
            seen.append(message.status)
    except grpc.RpcError as error:
        seen.append(error.code())

    # vmssd says NOT_SERVING first, then the stream ends as the server goes away.
    assert seen and seen[0] == hpb.HealthCheckResponse.NOT_SERVING, seen
    assert d.daemon.process.wait(10) == 0
    d.daemon.stopped = True
    assert not d.daemon.socket.exists()


@pytest.mark.parametrize("spelling", ["raw", "percent-encoded", "localhost"])
def test_any_authority_spelling_of_the_socket_path_is_accepted(deployment, unix_channel, stubs,
                                                               spelling):
    d = deployment()
    path = str(d.daemon.socket)
    authority = {"raw": path, "percent-encoded": urllib.parse.quote(path, safe=""),
                 "localhost": "localhost"}[spelling]
    api = Api(stubs, unix_channel(path, [("grpc.default_authority", authority)]))

    assert api.exists(vmss_id("pool", 3)) is True
    assert api.exists(vmss_id("pool", 42)) is False
    assert list_calls(d.fake) == 1


def test_an_abstract_socket_serves_unix_abstract_targets(deployment):
    name = f"vmssd-test-{os.getpid()}-{time.monotonic_ns()}"
    d = deployment(socket_name="@" + name)

    assert d.api.channel is not None
    assert d.api.exists(vmss_id("pool", 3)) is True
    assert d.api.shutdown(vmss_id("power", 1)) is True
    assert list_calls(d.fake) == 2


def test_a_wrong_content_type_gets_http_415(deployment):
    h2 = pytest.importorskip("h2", reason="the h2 package is needed to speak raw HTTP/2")
    import h2.config
    import h2.connection
    import h2.events

    d = deployment()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(d.daemon.socket))
    conn.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
               (":path", "/cloudprovider.instances.v1.Instances/InstanceExistsByProviderID"),
               ("content-type", "application/json"), ("te", "trailers")]
    conn.send_headers(1, headers)
    conn.send_data(1, b'{"provider_id": "x"}', end_stream=True)
    sock.sendall(conn.data_to_send())

    status = None
    ended = False
    while not ended:
        data = sock.recv(65536)
        assert data, "the server closed the connection without answering"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers)[b":status"]
            if isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended = True
        sock.sendall(conn.data_to_send())
    sock.close()

    assert status == b"415"
    assert d.api.exists(vmss_id("pool", 1)) is True, "the server goes on serving"
    assert list_calls(d.fake) == 1
