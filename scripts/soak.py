#!/usr/bin/env python3
"""Soak test: vmssd under a steady mix of questions while the fake Azure churns and fails.

Starts the fake Azure and vmssd on loopback, then for --seconds asks at --rate questions per
second: hot (instances of a scale set that always exists), cold (scale sets created during the
run), deleted (scale sets deleted during the run) and malformed provider IDs. Meanwhile scale
sets are deleted and created and faults are injected (429 with Retry-After, 500s, resets,
hangs). Reports answers by status, RSS and open fds after warm-up and at the end, and finally
sends SIGTERM while calls are in flight.

Fails (exit 1) when: RSS grows 5% or more after warm-up; the fd count grows; a hot instance is
ever answered false; a call in flight at SIGTERM does not finish with an answer; vmssd does not
exit 0 within the drain timeout; or the socket file is left behind.

Usage: scripts/soak.py --binary .build/debug/vmssd [--seconds 600] [--rate 200]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

import grpc  # noqa: E402

import grpc_stubs  # noqa: E402
from cloud_config import cloud_config_for  # noqa: E402

SUB, RG = "sub-1", "rg-1"
PREFIX = f"azure:///subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/"
CHURN_SETS = 8


def instance(scale_set: str, index: int) -> str:
    return PREFIX + f"virtualMachineScaleSets/{scale_set}/virtualMachines/{index}"


def inventory() -> dict:
    return {
        "credentials": {"tenantId": "tenant-1",
                        "clientSecrets": [{"clientId": "client-1", "clientSecret": "soak-secret"}]},
        "subscriptions": {SUB: {"resourceGroups": {RG: {
            "location": "westeurope",
            "scaleSets": [{"name": "hot", "capacity": 50}]
            + [{"name": f"churn{i}", "capacity": 10} for i in range(CHURN_SETS)],
            "virtualMachines": [{"name": "solo"}],
        }}}},
    }


def loopback_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
           and not k.startswith("AZURE_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class Fake:
    def __init__(self, work: Path):
        inv = work / "inventory.json"
        inv.write_text(json.dumps(inventory()))
        port_file = work / "fake.port"
        self.log = open(work / "fake.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "fakeazure" / "fake_azure.py"), "--port", "0",
             "--inventory", str(inv), "--port-file", str(port_file)],
            stdout=self.log, stderr=subprocess.STDOUT, env=loopback_env())
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip().isdigit()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit("fake Azure did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def control(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_fake/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with self.opener.open(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text.strip() else None

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


def process_figures(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, open fds) of a process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Load:
    """Asks questions at a steady rate from a few threads and tallies the answers."""

    def __init__(self, channel, stubs, rate: float, churn_state):
        self.stub = stubs.instances_pb2_grpc.InstancesStub(channel)
        self.pb = stubs.instances_pb2
        self.rate = rate
        self.churn = churn_state
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.tally = collections.Counter()
        self.hot_false = 0
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(4)]

    def question(self, rng: random.Random) -> tuple[str, str]:
        roll = rng.random()
        if roll < 0.6:
            return "hot", instance("hot", rng.randrange(50))
        if roll < 0.8:
            with self.churn.lock:
                live = list(self.churn.live)
            return "cold", instance(rng.choice(live), rng.randrange(10))
        if roll < 0.95:
            with self.churn.lock:
                gone = list(self.churn.gone) or ["neverwas"]
            return "deleted", instance(rng.choice(gone), rng.randrange(10))
        bad = ["azure:///subscriptions/", "azure:///x" * 50, "azure://" + "\x01" * 40,
               PREFIX + "virtualMachineScaleSets/hot/virtualMachines/notanumber"]
        return "malformed", rng.choice(bad)

    def run(self, index: int):
        rng = random.Random(index)
        interval = len(self.threads) / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            kind, provider_id = self.question(rng)
            try:
                reply = self.stub.InstanceExistsByProviderID(
                    self.pb.ProviderIDRequest(provider_id=provider_id), timeout=15)
                outcome = f"exists={reply.exists}"
                if kind == "hot" and not reply.exists:
                    with self.lock:
                        self.hot_false += 1
            except grpc.RpcError as error:
                outcome = error.code().name
            with self.lock:
                self.tally[(kind, outcome)] += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()


class Churn:
    """Deletes and creates scale sets and injects faults on a schedule."""

    def __init__(self, fake: Fake):
        self.fake = fake
        self.lock = threading.Lock()
        self.live = [f"churn{i}" for i in range(CHURN_SETS)]
        self.gone: list[str] = []
        self.next = CHURN_SETS
        self.stop = threading.Event()
        self.events = collections.Counter()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        rng = random.Random(7)
        faults = [
            {"operation": "list_vmss_vms", "status": 429, "retryAfter": 1, "count": 3},
            {"operation": "list_vmss_vms", "status": 500, "count": 2},
            {"operation": "list_vmss_vms", "kind": "reset", "count": 1},
            {"operation": "list_vmss_vms", "kind": "hang", "seconds": 3, "count": 1},
            {"operation": "list_vmss_vms", "kind": "broken", "count": 1},
        ]
        while not self.stop.wait(1.0):
            with self.lock:
                victim = self.live.pop(0)
                created = f"churn{self.next}"
                self.next += 1
            self.fake.control("DELETE", "scalesets", {"subscription": SUB, "resourceGroup": RG,
                                                      "scaleSet": victim, "delay": 0.5})
            self.fake.control("POST", "scalesets", {"subscription": SUB, "resourceGroup": RG,
                                                    "name": created, "capacity": 10})
            with self.lock:
                self.gone.append(victim)
                self.gone = self.gone[-20:]
                self.live.append(created)
            self.events["deleted+created"] += 1
            if rng.random() < 0.3:
                spec = rng.choice(faults)
                self.fake.control("POST", "faults", spec)
                self.events[spec.get("kind", str(spec.get("status")))] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / ".build" / "debug" / "vmssd"))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the baseline figures (default: 25%% of the run, at most 60)")
    parser.add_argument("--drain-timeout", type=float, default=10)
    options = parser.parse_args()
    warmup = options.warmup if options.warmup is not None else min(60.0, options.seconds * 0.25)
    stubs = grpc_stubs.load()
    work = Path(tempfile.mkdtemp(prefix="vmssd-soak-", dir="/tmp"))
    fake = Fake(work)
    config = cloud_config_for(inventory())
    config_path = work / "azure.json"
    config_path.write_text(json.dumps(config))
    socket_path = work / "vmssd.sock"
    log_path = work / "vmssd.log"
    log = open(log_path, "wb")
    daemon = subprocess.Popen(
        [options.binary, "--socket", str(socket_path), "--cloud-config", str(config_path),
         "--arm-endpoint", fake.url, "--aad-endpoint", fake.url, "--imds-endpoint", fake.url,
         "--listing-ttl", "5", "--negative-cache-ttl", "10", "--refresh-on-miss-interval", "2",
         "--arm-timeout", "2", "--drain-timeout", str(options.drain_timeout)],
        stdout=log, stderr=subprocess.STDOUT, env=loopback_env())
    failures: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit("vmssd did not start:\n" + log_path.read_text()[-2000:])
            time.sleep(0.05)
        channel = grpc.insecure_channel(f"unix://{socket_path}")
        churn = Churn(fake)
        load = Load(channel, stubs, options.rate, churn)
        started = time.monotonic()
        churn.thread.start()
        for thread in load.threads:
            thread.start()
        samples = []
        baseline = None
        while time.monotonic() - started < options.seconds:
            time.sleep(1)
            figures = process_figures(daemon.pid)
            samples.append(figures)
            if baseline is None and time.monotonic() - started >= warmup:
                baseline = figures
        end = process_figures(daemon.pid)
        churn.stop.set()
        churn.thread.join(5)
        fake.control("DELETE", "faults")

        # SIGTERM during load: slow cold questions are in flight when the signal arrives.
        fake.control("POST", "faults", {"operation": "list_vmss_vms", "kind": "hang",
                                        "seconds": 1.0, "count": 5})
        in_flight = []
        results: dict[int, str] = {}

        def slow_call(index: int):
            stub = stubs.instances_pb2_grpc.InstancesStub(channel)
            try:
                reply = stub.InstanceExistsByProviderID(
                    stubs.instances_pb2.ProviderIDRequest(provider_id=instance("hot", index)),
                    timeout=options.drain_timeout + 5)
                results[index] = f"exists={reply.exists}"
            except grpc.RpcError as error:
                results[index] = error.code().name

        stub = stubs.instances_pb2_grpc.AdminStub(channel)
        stub.Invalidate(stubs.instances_pb2.InvalidateRequest(), timeout=5)
        for index in range(5):
            thread = threading.Thread(target=slow_call, args=(index,), daemon=True)
            thread.start()
            in_flight.append(thread)
        time.sleep(0.3)
        signalled = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        for thread in in_flight:
            thread.join(options.drain_timeout + 10)
        load.stop.set()
        try:
            status = daemon.wait(options.drain_timeout + 5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            status = daemon.wait()
            failures.append(f"vmssd did not exit within {options.drain_timeout + 5:.0f} s of SIGTERM")
        exit_seconds = time.monotonic() - signalled
        for thread in load.threads:
            thread.join(20)
        channel.close()

        total = sum(load.tally.values())
        print(f"soak: {options.seconds:.0f} s at {options.rate:.0f}/s target, {total} answers "
              f"({total / options.seconds:.0f}/s)")
        by_kind = collections.defaultdict(dict)
        for (kind, outcome), count in sorted(load.tally.items()):
            by_kind[kind][outcome] = count
        for kind, outcomes in by_kind.items():
            print(f"  {kind:9s} " + ", ".join(f"{k}: {v}" for k, v in outcomes.items()))
        print("  churn: " + ", ".join(f"{k}: {v}" for k, v in sorted(churn.events.items())))
        rss0, fds0 = baseline or samples[0]
        rss1, fds1 = end
        growth = (rss1 - rss0) / rss0 * 100
        print(f"  RSS after {warmup:.0f} s warm-up {rss0} KiB, at end {rss1} KiB ({growth:+.1f}%); "
              f"peak {max(s[0] for s in samples)} KiB")
        print(f"  open fds after warm-up {fds0}, at end {fds1}, max {max(s[1] for s in samples)}")
        print(f"  SIGTERM: exit {status} after {exit_seconds:.2f} s; in-flight calls: "
              f"{sorted(results.values())}")
        if growth >= 5:
            failures.append(f"RSS grew {growth:.1f}% after warm-up")
        if fds1 > fds0 + 2:
            failures.append(f"open fds grew from {fds0} to {fds1}")
        if load.hot_false:
            failures.append(f"{load.hot_false} hot instances answered false")
        if total < options.seconds * options.rate * 0.5:
            failures.append(f"only {total} answers: the load did not run at its rate")
        if len(results) != 5 or any(r != "exists=True" for r in results.values()):
            failures.append(f"calls in flight at SIGTERM did not all finish: {results}")
        if status != 0:
            failures.append(f"vmssd exited {status} on SIGTERM")
        if exit_seconds > options.drain_timeout + 1:
            failures.append(f"exit took {exit_seconds:.1f} s, past the drain timeout")
        if socket_path.exists():
            failures.append("the socket file was left behind")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
        fake.stop()
    for failure in failures:
        print("FAIL: " + failure)
    if failures:
        print("vmssd log tail:\n" + log_path.read_text(errors="replace")[-3000:])
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
