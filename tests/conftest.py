"""Shared pytest fixtures: generated stubs, the built binaries, the fake Azure and vmssd itself.

Everything runs on loopback: the fake Azure listens on 127.0.0.1, vmssd is pointed at it for
ARM, AAD and IMDS, and proxy variables are removed from every child's environment so that no
request can leave the machine.

Inventory credentials: the azure.json written for vmssd takes `tenantId`, `subscriptionId`,
`resourceGroup`, `location`, `aadClientId` and `aadClientSecret` from the inventory file (at the
top level, or under "credentials"/"config"; azure.json or snake_case spelling), falling back to
the DEFAULT_CLOUD_CONFIG values (both in scripts/cloud_config.py, shared with `make run`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "scripts"))

import grpc_stubs  # noqa: E402
from cloud_config import DEFAULT_CLOUD_CONFIG, cloud_config_for  # noqa: E402,F401

FAKE_AZURE = Path(os.environ.get("FAKE_AZURE", ROOT / "fakeazure" / "fake_azure.py"))
# The inventory tests run against by default (sub-1/rg-1/pool and friends); `make run` serves
# fakeazure/demo-inventory.json instead, which tests must not depend on.
TEST_INVENTORY = ROOT / "fakeazure" / "example-inventory.json"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 35.0

def loopback_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without proxies or Azure settings that could redirect."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
        and not key.startswith("AZURE_")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


def wait_for_socket(path: Path, process: subprocess.Popen, timeout: float, log: Path) -> None:
    """Returns once a Unix socket at `path` accepts a connection; fails if the process exits.
    A path "@name" is the abstract socket `name`."""
    deadline = time.monotonic() + timeout
    abstract = str(path).startswith("@")
    address = "\0" + str(path)[1:] if abstract else str(path)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"process exited with {process.returncode} before listening:\n{tail(log)}")
        if abstract or path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(address)
                return
            except OSError:
                pass
            finally:
                probe.close()
        time.sleep(0.02)
    pytest.fail(f"{path} did not accept a connection within {timeout}s:\n{tail(log)}")


def tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERMs a process we started and returns its exit status (SIGKILL after `timeout`)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def stubs():
    """The generated Python modules for Protos/ (see grpc_stubs.load)."""
    return grpc_stubs.load()


def _binary(env_name: str, default: Path) -> Path:
    explicit = os.environ.get(env_name)
    path = Path(explicit) if explicit else default
    if path.is_file() and os.access(path, os.X_OK):
        return path.resolve()
    if explicit:
        pytest.fail(f"{env_name}={explicit} is not an executable file")
    pytest.skip(f"{path} is not built (set {env_name} or run make build)")


@pytest.fixture(scope="session")
def vmssd_binary() -> Path:
    """The built vmssd: $VMSSD_BIN, else .build/debug/vmssd."""
    return _binary("VMSSD_BIN", ROOT / ".build" / "debug" / "vmssd")


@pytest.fixture(scope="session")
def vmssctl_binary() -> Path:
    """The built vmssctl: $VMSSCTL_BIN, else .build/debug/vmssctl."""
    return _binary("VMSSCTL_BIN", ROOT / ".build" / "debug" / "vmssctl")


@pytest.fixture(scope="session")
def interopclient_binary() -> Path:
    """The grpc-go interop checker: $INTEROPCLIENT_BIN, else .build/go/interopclient."""
    return _binary("INTEROPCLIENT_BIN", ROOT / ".build" / "go" / "interopclient")


@pytest.fixture(scope="session")
def goserver_binary() -> Path:
    """The grpc-go reference server: $GOSERVER_BIN, else .build/go/goserver."""
    return _binary("GOSERVER_BIN", ROOT / ".build" / "go" / "goserver")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path: Unix socket paths must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="vmssd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class FakeAzure(str):
    """The base URL of a running fake Azure (it is the string), plus what the tests need."""

    process: subprocess.Popen
    port: int
    inventory_path: Path
    inventory: dict[str, Any]
    log_path: Path

    @property
    def url(self) -> str:
        return str(self)

    def cloud_config(self) -> dict[str, Any]:
        """azure.json fields matching this fake's inventory."""
        return cloud_config_for(self.inventory)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Calls the fake's control API under /_fake/ and returns the decoded JSON, if any."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self}/_fake/{path.lstrip('/')}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text.strip() else None

    def counts(self) -> dict[str, int]:
        """Requests the fake has received, by operation (`list_vmss_vms` counts every page)."""
        return self.control("GET", "counts")

    def reset_counts(self) -> None:
        self.control("POST", "counts/reset", {})

    def fault(self, operation: str, **spec: Any) -> None:
        """Injects a fault: `kind` status (default; `status`, `code`, `retryAfter`), hang
        (`seconds`), reset, body or broken; `count` requests (default 1); `match` limits it to
        request paths holding that text."""
        self.control("POST", "faults", {"operation": operation, **spec})

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")


@pytest.fixture
def fake_azure_inventory(request, tmp_path) -> Path:
    """The inventory the fake Azure serves: the test one, or a dict/path given by indirect
    parametrisation."""
    param = getattr(request, "param", None)
    if param is None:
        return TEST_INVENTORY
    if isinstance(param, dict):
        path = tmp_path / "inventory.json"
        path.write_text(json.dumps(param, indent=2))
        return path
    return Path(param)


@pytest.fixture
def fake_azure_factory(tmp_path) -> Iterator[Callable[..., FakeAzure]]:
    """Starts fake Azure processes on loopback; each is stopped at the end of the test."""
    if not FAKE_AZURE.is_file():
        pytest.skip(f"{FAKE_AZURE} does not exist yet")
    started: list[FakeAzure] = []

    def start(inventory: Path | dict[str, Any], *extra_args: str) -> FakeAzure:
        index = len(started)
        if isinstance(inventory, dict):
            path = tmp_path / f"inventory-{index}.json"
            path.write_text(json.dumps(inventory, indent=2))
            inventory = path
        parsed_inventory = json.loads(Path(inventory).read_text())
        port_file = tmp_path / f"fake-azure-{index}.port"
        log_path = tmp_path / f"fake-azure-{index}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(FAKE_AZURE), "--port", "0", "--inventory", str(inventory),
                 "--port-file", str(port_file), *extra_args],
                stdout=log, stderr=subprocess.STDOUT, env=loopback_env(), cwd=ROOT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"fake Azure exited with {process.returncode}:\n{tail(log_path)}")
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text.isdigit():
                port = int(text)
                break
            time.sleep(0.02)
        if port is None:
            stop_process(process, 5)
            pytest.fail(f"fake Azure wrote no port within {START_TIMEOUT}s:\n{tail(log_path)}")
        fake = FakeAzure(f"http://127.0.0.1:{port}")
        fake.process, fake.port, fake.log_path = process, port, log_path
        fake.inventory_path = Path(inventory)
        fake.inventory = parsed_inventory
        started.append(fake)
        return fake

    yield start
    for fake in started:
        stop_process(fake.process, 10)


@pytest.fixture
def fake_azure(fake_azure_factory, fake_azure_inventory) -> FakeAzure:
    """A running fake Azure serving `fake_azure_inventory`; it is its base URL."""
    return fake_azure_factory(fake_azure_inventory)


class RunningVmssd:
    """A vmssd process on a socket. Unpacks as (socket path, process)."""

    def __init__(self, socket_path: Path, process: subprocess.Popen, log_path: Path,
                 config_path: Path, fake: FakeAzure):
        self.socket = socket_path
        self.process = process
        self.log_path = log_path
        self.config_path = config_path
        self.fake = fake
        self.stopped = False

    def __iter__(self):
        return iter((self.socket, self.process))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERMs vmssd and returns its exit status; teardown then checks nothing more."""
        self.stopped = True
        return stop_process(self.process, timeout)


@pytest.fixture
def vmssd(request, vmssd_binary, short_tmp, fake_azure_inventory) -> Iterator[Callable[..., RunningVmssd]]:
    """Starts vmssd against a fake Azure; a factory taking extra command-line arguments.

    `vmssd(*args, fake=None, cloud_config=None, env=None)` writes azure.json (the fake's
    credentials, updated with `cloud_config`), starts vmssd on a fresh socket and returns once
    the socket accepts. Without `fake`, the `fake_azure` fixture is started on first use
    (parametrise `fake_azure_inventory` indirectly to choose its inventory). Teardown SIGTERMs each vmssd still running and asserts that it exited
    0 and removed its socket file.
    """
    running: list[RunningVmssd] = []

    def start(*args: str, fake: FakeAzure | None = None,
              cloud_config: dict[str, Any] | None = None,
              env: dict[str, str] | None = None,
              socket_name: str | None = None) -> RunningVmssd:
        if fake is None:
            fake = request.getfixturevalue("fake_azure")
        index = len(running)
        config = fake.cloud_config()
        config.update(cloud_config or {})
        config_path = short_tmp / f"azure-{index}.json"
        config_path.write_text(json.dumps(config, indent=2))
        # An abstract socket is named "@name"; it has no file to wait for or to clean up.
        socket_path = Path(socket_name) if socket_name else short_tmp / f"vmssd-{index}.sock"
        log_path = short_tmp / f"vmssd-{index}.log"
        command = [
            str(vmssd_binary),
            "--socket", str(socket_path),
            "--cloud-config", str(config_path),
            "--arm-endpoint", fake.url,
            "--aad-endpoint", fake.url,
            "--imds-endpoint", fake.url,
            *args,
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       env=loopback_env(env), cwd=short_tmp)
        instance = RunningVmssd(socket_path, process, log_path, config_path, fake)
        running.append(instance)
        wait_for_socket(socket_path, process, START_TIMEOUT, log_path)
        return instance

    yield start
    problems = []
    for instance in running:
        if instance.stopped:
            continue
        if instance.process.poll() is not None:
            problems.append(f"vmssd exited on its own with {instance.process.returncode}:\n"
                            f"{tail(instance.log_path)}")
            continue
        status = stop_process(instance.process)
        if status != 0:
            problems.append(f"vmssd exited {status} on SIGTERM:\n{tail(instance.log_path)}")
        if not str(instance.socket).startswith("@") and instance.socket.exists():
            problems.append(f"vmssd left its socket {instance.socket} behind")
    assert not problems, "\n".join(problems)


@pytest.fixture
def vmssctl(vmssctl_binary) -> Callable[..., subprocess.CompletedProcess]:
    """Runs `vmssctl --socket SOCKET ARGS...` and returns the completed process (text)."""

    def run(socket_path: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([str(vmssctl_binary), "--socket", str(socket_path), *args],
                              capture_output=True, text=True, timeout=timeout,
                              env=loopback_env())

    return run


@pytest.fixture
def unix_channel() -> Iterator[Callable[..., Any]]:
    """Opens grpcio channels to Unix sockets; all are closed at the end of the test."""
    import grpc

    channels = []

    def open_channel(socket_path: Path | str, options: list[tuple[str, Any]] | None = None):
        text = str(socket_path)
        if text.startswith("@"):
            target = f"unix-abstract:{text[1:]}"
        elif text.startswith("unix"):
            target = text
        else:
            target = f"unix://{text}"
        channel = grpc.insecure_channel(target, options=options or [])
        channels.append(channel)
        return channel

    yield open_channel
    for channel in channels:
        channel.close()


@pytest.fixture
def goserver(goserver_binary, short_tmp) -> Iterator[Callable[..., Path]]:
    """Starts the grpc-go reference server; returns its socket path once it accepts."""
    processes: list[subprocess.Popen] = []

    def start(*args: str) -> Path:
        socket_path = short_tmp / f"goserver-{len(processes)}.sock"
        log_path = short_tmp / f"goserver-{len(processes)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([str(goserver_binary), "-socket", str(socket_path), *args],
                                       stdout=log, stderr=subprocess.STDOUT, env=loopback_env())
        processes.append(process)
        wait_for_socket(socket_path, process, START_TIMEOUT, log_path)
        return socket_path

    yield start
    for process in processes:
        stop_process(process, 10)


@pytest.fixture
def interop(interopclient_binary) -> Callable[..., subprocess.CompletedProcess]:
    """Runs the grpc-go interop checker against a socket with JSON expectations.

    `interop(socket, expectations, *args)` returns the completed process; its stdout has one
    PASS/FAIL/SKIP line per check and the exit status is 0 only when every check passed.
    """

    def run(socket_path: Path, expectations: dict[str, Any], *args: str,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(interopclient_binary), "-socket", str(socket_path), "-expect", "-", *args],
            input=json.dumps(expectations), capture_output=True, text=True, timeout=timeout,
            env=loopback_env(),
        )

    return run


class Deployment:
    """A fake Azure, a vmssd against it and a grpcio client of that vmssd."""

    def __init__(self, fake: FakeAzure, daemon: RunningVmssd, api: Any):
        self.fake = fake
        self.daemon = daemon
        self.api = api


@pytest.fixture
def deployment(fake_azure_factory, vmssd, unix_channel, stubs) -> Callable[..., Deployment]:
    """Starts the fake Azure with tests/helpers.INVENTORY (or `inventory`), vmssd with `args`
    against it, waits for SERVING and zeroes the fake's counters, so a test counts only the ARM
    requests its own questions cause."""
    import helpers

    def start(*args: str, inventory: dict[str, Any] | None = None, page_size: int | None = None,
              cloud_config: dict[str, Any] | None = None, socket_name: str | None = None,
              ) -> Deployment:
        extra = ("--page-size", str(page_size)) if page_size else ()
        fake = fake_azure_factory(inventory or helpers.INVENTORY, *extra)
        daemon = vmssd(*args, fake=fake, cloud_config=cloud_config, socket_name=socket_name)
        api = helpers.Api(stubs, unix_channel(daemon.socket))
        api.wait_serving()
        fake.reset_counts()
        return Deployment(fake, daemon, api)

    return start
