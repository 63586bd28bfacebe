"""Who may connect to vmssd, and that no secret ever leaves it.

Access: the socket is 0600 unless told otherwise; `--allowed-uids` refuses every other peer
uid (checked with a client running as nobody, 65534), and says so in the log; a socket in a
directory others may write to is warned about at start.

Secrets: the client secret, the federated assertion and every bearer token the fake Azure
issued are looked for in vmssd's log (verbosity 10, text and JSON), in every error message a
client got and in the Admin Stats answer, across every credential type and the error paths
(401s, token endpoint faults, expired tokens, a wrong secret).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from hpack import Decoder, Encoder
from hyperframe.frame import DataFrame, Frame, HeadersFrame, SettingsFrame

SUB, RG = "sub-1", "rg-1"
PREFIX = f"azure:///subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/"
POOL = PREFIX + "virtualMachineScaleSets/pool/virtualMachines/%d"
SOLO = PREFIX + "virtualMachines/solo"
SECRET = "s3cr3t-value-Zq7"
WRONG_SECRET = "wrong-secret-Hk4"
ASSERTION = "eyJhbGciOi.fake-federated-assertion.Sig9x"
NOBODY = 65534
INVENTORY = {
    "credentials": {
        "tenantId": "tenant-1",
        "clientSecrets": [{"clientId": "client-1", "clientSecret": SECRET}],
        "workloadIdentities": [{"clientId": "wi-client", "assertions": [ASSERTION]}],
        "managedIdentity": {"systemAssigned": True,
                            "userAssigned": [{"clientId": "ua-client", "resourceId": "/x/ua"}]},
    },
    "subscriptions": {SUB: {"resourceGroups": {RG: {
        "location": "westeurope",
        "scaleSets": [{"name": "pool", "capacity": 3}, {"name": "doomed", "capacity": 1}],
        "virtualMachines": [{"name": "solo"}],
    }}}},
}

# A stdlib-only client for another uid: sends the bytes on stdin to the socket, prints what
# came back (hex) and whether the server closed the connection.
PEER_SCRIPT = r"""
import json, socket, sys, time
data = bytes.fromhex(sys.stdin.read())
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(3)
result = {"connected": False, "received": "", "eof": False}
try:
    s.connect(sys.argv[1])
    result["connected"] = True
    s.sendall(data)
    received = b""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            result["eof"] = True
            break
        received += chunk
        if b"grpc-status" in received or len(received) > 200:
            pass
    result["received"] = received.hex()
except (socket.timeout, TimeoutError):
    result["received"] = received.hex() if "received" in dir() else ""
except OSError as error:
    result["error"] = str(error)
    result["eof"] = True
print(json.dumps(result))
"""


def request_bytes(provider_id: str) -> bytes:
    encoder = Encoder()
    block = encoder.encode([
        (":method", "POST"), (":scheme", "http"),
        (":path", "/cloudprovider.instances.v1.Instances/InstanceExistsByProviderID"),
        (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers"),
    ])
    payload = provider_id.encode()
    message = b"\x0a" + bytes([len(payload)]) + payload
    framed = b"\x00" + len(message).to_bytes(4, "big") + message
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize()
            + HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize()
            + DataFrame(1, data=framed, flags=["END_STREAM"]).serialize())


def grpc_statuses(received: bytes) -> list[str]:
    """The grpc-status values in a server's byte stream."""
    decoder, statuses = Decoder(), []
    while len(received) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(received[:9]))
        frame.parse_body(memoryview(received[9:9 + length]))
        received = received[9 + length:]
        if isinstance(frame, HeadersFrame):
            for name, value in decoder.decode(frame.data):
                name = name.decode() if isinstance(name, bytes) else name
                if name == "grpc-status":
                    statuses.append(value.decode() if isinstance(value, bytes) else value)
    return statuses


def ask_as(uid: int, socket_path: Path) -> dict:
    """Runs one raw call as `uid` (setpriv) and returns what the peer saw."""
    completed = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
         sys.executable, "-c", PEER_SCRIPT, str(socket_path)],
        input=request_bytes(POOL % 1).hex(), capture_output=True, text=True, timeout=20)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    result["statuses"] = grpc_statuses(bytes.fromhex(result["received"]))
    return result


def wait_for_log(daemon, text: str, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in daemon.log():
            return True
        time.sleep(0.05)
    return False


def exists(channel, stubs, provider_id: str):
    stub = stubs.instances_pb2_grpc.InstancesStub(channel)
    try:
        return stub.InstanceExistsByProviderID(
            stubs.instances_pb2.ProviderIDRequest(provider_id=provider_id), timeout=10).exists
    except grpc.RpcError as error:
        return error


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing uid needs root")


def test_the_socket_is_created_0600_by_default(vmssd):
    daemon = vmssd()
    mode = stat.S_IMODE(os.stat(daemon.socket).st_mode)
    assert mode == 0o600, oct(mode)


@needs_root
def test_allowed_uids_refuses_other_peers_and_logs_them(vmssd, short_tmp, fake_azure_factory):
    os.chmod(short_tmp, 0o755)
    fake = fake_azure_factory(INVENTORY)
    daemon = vmssd("--socket-mode", "0666", "--allowed-uids", "0", fake=fake)
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o666

    refused = ask_as(NOBODY, daemon.socket)
    assert refused["connected"], refused  # the file mode lets it in; the uid check must not
    assert "0" not in refused["statuses"], refused
    assert refused["eof"] or "7" in refused["statuses"], refused  # closed or PERMISSION_DENIED
    assert wait_for_log(daemon, "peer_refused"), daemon.log()[-2000:]
    assert f"uid={NOBODY}" in daemon.log()

    allowed = ask_as(0, daemon.socket)
    assert allowed["statuses"] == ["0"], allowed


@needs_root
def test_a_listed_uid_is_answered(vmssd, short_tmp, fake_azure_factory):
    os.chmod(short_tmp, 0o755)
    fake = fake_azure_factory(INVENTORY)
    daemon = vmssd("--socket-mode", "0666", "--allowed-uids", f"0,{NOBODY}", fake=fake)
    answer = ask_as(NOBODY, daemon.socket)
    assert answer["statuses"] == ["0"], answer
    assert "peer_refused" not in daemon.log()


def test_a_socket_directory_writable_by_others_is_warned_about(vmssd, short_tmp):
    os.chmod(short_tmp, 0o1777)
    daemon = vmssd()
    assert wait_for_log(daemon, "writable by other users"), daemon.log()[-2000:]


# -- secrets -------------------------------------------------------------------------------

CREDENTIALS = {
    "client-secret": {"aadClientId": "client-1", "aadClientSecret": SECRET},
    "wrong-secret": {"aadClientId": "client-1", "aadClientSecret": WRONG_SECRET},
    "workload-identity": {"aadClientId": "wi-client", "aadClientSecret": "",
                          "useFederatedWorkloadIdentityExtension": True},
    "managed-identity": {"aadClientId": "", "aadClientSecret": "",
                         "useManagedIdentityExtension": True},
    "user-assigned-identity": {"aadClientId": "", "aadClientSecret": "",
                               "useManagedIdentityExtension": True,
                               "userAssignedIdentityID": "ua-client"},
}


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("credential", sorted(CREDENTIALS))
def test_no_secret_reaches_logs_errors_or_stats(
        vmssd, fake_azure_factory, unix_channel, stubs, short_tmp, log_format, credential):
    fake = fake_azure_factory(INVENTORY)
    config = dict(CREDENTIALS[credential])
    if config.pop("useFederatedWorkloadIdentityExtension", False):
        token_file = short_tmp / "federated-token"
        token_file.write_text(ASSERTION)
        config.update(useFederatedWorkloadIdentityExtension=True,
                      aadFederatedTokenFile=str(token_file))
    daemon = vmssd("--v", "10", "--log-format", log_format,
                   "--listing-ttl", "1", "--vm-ttl", "1", "--refresh-on-miss-interval", "0",
                   fake=fake, cloud_config=config)
    channel = unix_channel(daemon.socket)
    pb, grpc_module = stubs.instances_pb2, stubs.instances_pb2_grpc
    admin = grpc_module.AdminStub(channel)
    seen: list[str] = []

    def ask(provider_id: str):
        answer = exists(channel, stubs, provider_id)
        if isinstance(answer, grpc.RpcError):
            seen.append(f"{answer.code()} {answer.details()} {answer.trailing_metadata()}")

    def fault(operation: str, **spec):
        fake.control("POST", "faults", {"operation": operation, **spec})

    time.sleep(0.5)
    ask(POOL % 0)
    ask(SOLO)
    # A 401 from ARM: the token is dropped and renewed once.
    fault("*", status=401, code="InvalidAuthenticationToken", count=2)
    admin.Invalidate(pb.InvalidateRequest(), timeout=10)
    ask(POOL % 1)
    # Expired tokens, then a token endpoint that fails in several ways.
    fake.control("POST", "tokens/expire")
    for status in (500, 400, 401):
        fault("token", status=status, count=1)
        admin.Invalidate(pb.InvalidateRequest(), timeout=10)
        fake.control("POST", "tokens/expire")
        ask(POOL % 2)
    fault("token", kind="broken", count=1)
    fake.control("POST", "tokens/expire")
    admin.Invalidate(pb.InvalidateRequest(), timeout=10)
    ask(POOL % 2)
    fake.control("DELETE", "faults")
    time.sleep(1.1)
    ask(POOL % 0)
    ask(PREFIX + "virtualMachineScaleSets/doomed/virtualMachines/0")
    ask("azure:///subscriptions/")  # a malformed ID: an INVALID_ARGUMENT error path
    stats = admin.Stats(pb.StatsRequest(), timeout=10)

    tokens = fake.control("GET", "tokens")["tokens"]
    if credential != "wrong-secret":
        assert tokens, "the fake issued no token: the credential path was not exercised"
    daemon.stop()
    log = daemon.log()
    if log_format == "json":
        for line in log.splitlines():
            if line.strip():
                json.loads(line)
    secrets = {"client secret": SECRET, "wrong secret": WRONG_SECRET, "assertion": ASSERTION}
    secrets.update({f"token {i}": token for i, token in enumerate(tokens)})
    places = {"log": log, "errors": "\n".join(seen),
              "stats": str(stats) + stats.SerializeToString().decode("latin-1")}
    for place, text in places.items():
        for what, value in secrets.items():
            assert value not in text, f"{what} appears in {place}"
    assert "Bearer " not in log
