"""The grpc-go reference server against both clients: shows that the interop checks and the
generated Python stubs are right before either is used to judge vmssd."""

import grpc
import pytest

PREFIX = ("azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench-rg"
          "/providers/Microsoft.Compute/virtualMachineScaleSets")
LIVE = f"{PREFIX}/bench-pool-000/virtualMachines/0"
STOPPED = f"{PREFIX}/bench-pool-000/virtualMachines/9"
GONE = f"{PREFIX}/bench-pool-000/virtualMachines/49"

EXPECTATIONS = {
    "exists": [LIVE, STOPPED],
    "gone": [GONE, f"{PREFIX}/no-such-pool/virtualMachines/0"],
    "shutdown": [STOPPED],
    "running": [LIVE, GONE],
    "not_found_metadata": [GONE],
    "metadata": [{
        "node_name": "bench-pool-000000000", "provider_id": LIVE,
        "instance_type": "Standard_D4s_v5", "zone": "westeurope-1", "region": "westeurope",
        "node_addresses": [{"type": "InternalIP", "address": "10.1.0.4"},
                           {"type": "Hostname", "address": "bench-pool-000000000"}],
    }],
    "slow": f"{PREFIX}/slow-pool/virtualMachines/0",
}


def test_every_interop_check_passes_against_the_grpc_go_server(goserver, interop):
    socket_path = goserver("-vms", "100", "-slow-delay", "5s")

    result = interop(socket_path, EXPECTATIONS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "PASS deadline-exceeded" in result.stdout
    assert "PASS oversized-request-resource-exhausted" in result.stdout


def test_the_interop_checker_fails_on_a_wrong_answer(goserver, interop):
    socket_path = goserver("-vms", "100")

    result = interop(socket_path, {"gone": [LIVE]})

    assert result.returncode == 1
    assert f"FAIL exists-by-provider-id: {LIVE}" in result.stdout


def test_grpcio_stubs_speak_the_contract_to_grpc_go(goserver, stubs, unix_channel):
    channel = unix_channel(goserver("-vms", "100"))
    instances = stubs.instances_pb2_grpc.InstancesStub(channel)
    health = stubs.health_pb2_grpc.HealthStub(channel)
    pb = stubs.instances_pb2

    assert instances.InstanceExistsByProviderID(pb.ProviderIDRequest(provider_id=LIVE)).exists
    assert not instances.InstanceExistsByProviderID(pb.ProviderIDRequest(provider_id=GONE)).exists
    assert instances.InstanceShutdown(pb.NodeRequest(provider_id=STOPPED)).shutdown
    metadata = instances.InstanceMetadata(pb.NodeRequest(node_name="bench-pool-000000000"))
    assert (metadata.provider_id, metadata.zone) == (LIVE, "westeurope-1")
    with pytest.raises(grpc.RpcError) as missing:
        instances.InstanceMetadata(pb.NodeRequest(provider_id=GONE))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    serving = stubs.health_pb2.HealthCheckResponse.SERVING
    assert health.Check(stubs.health_pb2.HealthCheckRequest(service="")).status == serving
