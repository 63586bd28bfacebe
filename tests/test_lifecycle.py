"""How vmssd starts and stops: a graceful drain on SIGTERM, the socket file's life and mode,
refusals that leave things as they were, `--help`, and health before the first token."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time

import grpc

from conftest import ROOT, loopback_env
from helpers import INVENTORY, Api, list_calls, rpc_error, vmss_id


def run_vmssd(binary, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True,
                          timeout=timeout, env=loopback_env())


def test_a_call_in_flight_at_sigterm_gets_its_answer_and_vmssd_exits_0(deployment):
    d = deployment("--drain-timeout", "6")
    d.fake.fault("list_vmss_vms", kind="hang", seconds=1.5, count=1)
    pending = d.api.exists_future(vmss_id("pool", 1), timeout=10)
    time.sleep(0.3)
    assert not pending.done(), "the listing should still be hanging"

    stopped_at = time.monotonic()
    d.daemon.process.send_signal(signal.SIGTERM)

    time.sleep(0.2)
    asked_at = time.monotonic()
    late = rpc_error(d.api.exists, vmss_id("power", 1), timeout=5)
    assert late.code() == grpc.StatusCode.UNAVAILABLE, "a call after SIGTERM is turned away"
    assert time.monotonic() - asked_at < 1, "and at once, not after the drain"

    assert pending.result().exists is True
    assert d.daemon.process.wait(10) == 0
    d.daemon.stopped = True
    assert time.monotonic() - stopped_at < 6
    assert not d.daemon.socket.exists()
    assert list_calls(d.fake) == 1
    assert "stopped" in d.daemon.log()


def test_a_call_longer_than_the_drain_timeout_does_not_hold_the_exit(deployment):
    d = deployment("--drain-timeout", "1")
    d.fake.fault("list_vmss_vms", kind="hang", seconds=8, count=1)
    pending = d.api.exists_future(vmss_id("pool", 1), timeout=15)
    time.sleep(0.3)

    stopped_at = time.monotonic()
    d.daemon.process.send_signal(signal.SIGTERM)

    assert d.daemon.process.wait(10) == 0
    d.daemon.stopped = True
    assert time.monotonic() - stopped_at < 4
    assert not d.daemon.socket.exists()
    try:
        answer = pending.result()
        raise AssertionError(f"a call cut off by the drain got an answer: {answer}")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_a_stale_socket_file_is_removed_at_start(fake_azure_factory, vmssd, short_tmp,
                                                 unix_channel, stubs):
    path = short_tmp / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()  # the file stays behind, as after a crash
    assert stat.S_ISSOCK(path.stat().st_mode)

    d = vmssd(fake=fake_azure_factory(INVENTORY), socket_name=str(path))

    api = Api(stubs, unix_channel(path))
    api.wait_serving()
    assert api.exists(vmss_id("pool", 0)) is True
    assert d.stop() == 0
    assert not path.exists()


def test_a_regular_file_at_the_socket_path_is_refused_and_left_alone(
        fake_azure_factory, vmssd_binary, short_tmp):
    fake = fake_azure_factory(INVENTORY)
    config = short_tmp / "azure.json"
    config.write_text(json.dumps(fake.cloud_config()))
    path = short_tmp / "not-a-socket"
    path.write_text("precious data\n")

    result = run_vmssd(vmssd_binary, "--socket", str(path), "--cloud-config", str(config),
                       "--arm-endpoint", fake.url, "--aad-endpoint", fake.url)

    assert result.returncode == 1, result.stderr
    assert str(path) in result.stderr
    assert re.search(r"not a socket|exists|refus", result.stderr, re.IGNORECASE), result.stderr
    assert path.read_text() == "precious data\n"
    assert sum(fake.counts().values()) == 0


def test_the_socket_is_0600_by_default_and_socket_mode_is_honoured(fake_azure_factory, vmssd):
    fake = fake_azure_factory(INVENTORY)

    default = vmssd(fake=fake)
    custom = vmssd("--socket-mode", "0660", fake=fake)

    assert stat.S_IMODE(default.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(custom.socket.stat().st_mode) == 0o660


def test_help_lists_every_flag_with_its_default(vmssd_binary):
    source = (ROOT / "Sources" / "vmssd" / "Options.swift").read_text()
    flags = re.findall(r'Flag\(\s*name: "([a-z-]+)"', source)

    result = run_vmssd(vmssd_binary, "--help")

    assert result.returncode == 0
    assert len(flags) >= 25
    for flag in flags:
        line = re.search(rf"^  --{re.escape(flag)}\b.*(?:\n {{30,}}.*)?", result.stdout, re.M)
        assert line, f"--{flag} is missing from --help"
        if flag != "help":
            assert "(default: " in line.group(0), f"--{flag} shows no default"
    for flag, default in [("negative-cache-ttl", "120"), ("refresh-on-miss-interval", "10"),
                          ("drain-timeout", "25"), ("socket-mode", "0600"),
                          ("new-node-grace", "0"), ("max-stale", "2 x listing TTL")]:
        assert re.search(rf"--{flag}\b[\s\S]*?\(default: {re.escape(default)}\)",
                         result.stdout), flag


def test_a_config_without_subscription_id_stops_the_start_naming_the_field(
        fake_azure_factory, vmssd_binary, short_tmp):
    fake = fake_azure_factory(INVENTORY)
    config = fake.cloud_config()
    del config["subscriptionId"]
    path = short_tmp / "azure.json"
    path.write_text(json.dumps(config))
    socket_path = short_tmp / "never.sock"

    result = run_vmssd(vmssd_binary, "--socket", str(socket_path), "--cloud-config", str(path),
                       "--arm-endpoint", fake.url, "--aad-endpoint", fake.url)

    assert result.returncode == 1
    assert "subscriptionId" in result.stderr
    assert "s3cr3t-value" not in result.stderr + result.stdout
    assert not socket_path.exists()
    assert sum(fake.counts().values()) == 0


def test_health_is_not_serving_until_the_first_token_then_serving(
        fake_azure_factory, vmssd, unix_channel, stubs):
    fake = fake_azure_factory(INVENTORY)
    fake.fault("token_aad", status=503, count=1)

    d = vmssd(fake=fake)
    api = Api(stubs, unix_channel(d.socket))

    assert api.health_status() == api.hpb.HealthCheckResponse.NOT_SERVING
    api.wait_serving(timeout=10)
    assert fake.counts()["token_aad"] == 2
    assert api.exists(vmss_id("pool", 0)) is True
    assert fake.counts()["token_aad"] == 2, "the token obtained is reused"


def test_a_socket_another_server_is_listening_on_is_not_taken_over(deployment, vmssd_binary):
    d = deployment()

    result = run_vmssd(vmssd_binary, "--socket", str(d.daemon.socket),
                       "--cloud-config", str(d.daemon.config_path),
                       "--arm-endpoint", d.fake.url, "--aad-endpoint", d.fake.url)

    assert result.returncode == 1, result.stderr
    assert "another server is listening" in result.stderr
    assert d.api.exists(vmss_id("pool", 1)) is True, "the first server still has its socket"
    assert d.daemon.socket.exists()


def test_sigint_stops_like_sigterm(deployment):
    d = deployment()
    assert d.api.exists(vmss_id("pool", 1)) is True

    d.daemon.process.send_signal(signal.SIGINT)

    assert d.daemon.process.wait(10) == 0
    d.daemon.stopped = True
    assert not d.daemon.socket.exists()


def test_sighup_stops_like_sigterm(deployment):
    d = deployment()
    assert d.api.exists(vmss_id("pool", 1)) is True

    d.daemon.process.send_signal(signal.SIGHUP)

    assert d.daemon.process.wait(10) == 0
    d.daemon.stopped = True
    assert not d.daemon.socket.exists()


def test_allowed_uids_turns_other_users_away(fake_azure_factory, vmssd, unix_channel, stubs):
    fake = fake_azure_factory(INVENTORY)
    me = str(os.getuid())

    strangers_only = vmssd("--allowed-uids", f"{int(me) + 4242}", fake=fake)
    me_too = vmssd("--allowed-uids", f"{int(me) + 4242},{me}", fake=fake)

    refused = rpc_error(Api(stubs, unix_channel(strangers_only.socket)).exists,
                        vmss_id("pool", 1), timeout=3)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    welcome = Api(stubs, unix_channel(me_too.socket))
    welcome.wait_serving()
    assert welcome.exists(vmss_id("pool", 1)) is True
    assert fake.counts()["list_vmss_vms"] == 1, "the refused call never reached the cache"
