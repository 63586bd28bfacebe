#!/usr/bin/env python3
"""Checks the deployment files under deploy/ (or the directory given as the only argument).

Every YAML file must load with PyYAML. The static Pod must run kube-controller-manager and
vmssd sharing an emptyDir at /var/run/vmssd, vmssd must be probed on its metrics address and
read azure.json from the host read-only, and the systemd unit must have the [Unit], [Service]
and [Install] sections with an ExecStart. Prints every problem found and exits 1 if any.
"""
import pathlib
import shlex
import sys

import yaml

SOCKET_DIR = "/var/run/vmssd"
AZURE_JSON = "/etc/kubernetes/azure.json"
METRICS = ("127.0.0.1", 9464)


def flag(command, name):
    """The value after `name` (or in `name=value`) in an argument list, else None."""
    for index, argument in enumerate(command):
        if argument == name and index + 1 < len(command):
            return command[index + 1]
        if argument.startswith(name + "="):
            return argument.split("=", 1)[1]
    return None


def check_pod(pod, where, problems):
    spec = pod.get("spec") or {}
    containers = {c.get("name"): c for c in spec.get("containers") or []}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for name in ("kube-controller-manager", "vmssd"):
        if name not in containers:
            problems.append(f"{where}: no container named {name}")
    if problems:
        return

    def mount(container, path):
        return next(
            (m for m in container.get("volumeMounts") or [] if m.get("mountPath") == path), None)

    socket_volumes = set()
    for name in ("kube-controller-manager", "vmssd"):
        found = mount(containers[name], SOCKET_DIR)
        if found is None:
            problems.append(f"{where}: {name} does not mount {SOCKET_DIR}")
            continue
        socket_volumes.add(found.get("name"))
        if found.get("readOnly"):
            problems.append(f"{where}: {name} mounts {SOCKET_DIR} read-only; sockets need write")
    if len(socket_volumes) > 1:
        problems.append(f"{where}: the containers mount different volumes at {SOCKET_DIR}")
    for name in socket_volumes:
        if "emptyDir" not in (volumes.get(name) or {}):
            problems.append(f"{where}: volume {name} at {SOCKET_DIR} is not an emptyDir")

    vmssd = containers["vmssd"]
    command = [str(part) for part in (vmssd.get("command") or []) + (vmssd.get("args") or [])]
    socket = flag(command, "--socket")
    if socket is None or not socket.startswith(SOCKET_DIR + "/"):
        problems.append(f"{where}: vmssd --socket {socket!r} is not under {SOCKET_DIR}")
    if flag(command, "--metrics-address") != f"{METRICS[0]}:{METRICS[1]}":
        problems.append(f"{where}: vmssd --metrics-address is not {METRICS[0]}:{METRICS[1]}")
    if flag(command, "--cloud-config") != AZURE_JSON:
        problems.append(f"{where}: vmssd --cloud-config is not {AZURE_JSON}")

    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = ((vmssd.get(probe) or {}).get("httpGet")) or {}
        if (get.get("host"), get.get("port"), get.get("path")) != (*METRICS, path):
            problems.append(
                f"{where}: vmssd {probe} is not httpGet {METRICS[0]}:{METRICS[1]}{path}: {get}")

    azure = mount(vmssd, AZURE_JSON)
    if azure is None or not azure.get("readOnly"):
        problems.append(f"{where}: vmssd does not mount {AZURE_JSON} read-only")
    else:
        host = (volumes.get(azure.get("name")) or {}).get("hostPath") or {}
        if host.get("path") != AZURE_JSON:
            problems.append(f"{where}: {AZURE_JSON} does not come from the host's {AZURE_JSON}")

    security = vmssd.get("securityContext") or {}
    if not security.get("runAsNonRoot") or not isinstance(security.get("runAsUser"), int):
        problems.append(f"{where}: vmssd must set runAsNonRoot with a fixed runAsUser")
    if not security.get("readOnlyRootFilesystem"):
        problems.append(f"{where}: vmssd must have readOnlyRootFilesystem")
    resources = vmssd.get("resources") or {}
    if not resources.get("requests") or not resources.get("limits"):
        problems.append(f"{where}: vmssd needs resource requests and limits")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    drain = flag(command, "--drain-timeout")
    if drain is None or not drain.isdigit() or int(drain) >= grace:
        problems.append(f"{where}: --drain-timeout {drain!r} must be below the grace {grace}s")


def check_unit(path, problems):
    sections, current = {}, None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current.setdefault(key.strip(), []).append(value.strip())
        else:
            problems.append(f"{path}:{number}: not a section or key=value: {raw!r}")
    for name in ("Unit", "Service", "Install"):
        if name not in sections:
            problems.append(f"{path}: no [{name}] section")
    service = sections.get("Service", {})
    exec_start = service.get("ExecStart")
    if not exec_start or not exec_start[-1]:
        problems.append(f"{path}: [Service] has no ExecStart")
        return
    command = shlex.split(exec_start[-1])
    socket = flag(command, "--socket") or ""
    runtime = service.get("RuntimeDirectory", [""])[-1]
    if not runtime or not socket.startswith(f"/run/{runtime}/"):
        problems.append(f"{path}: --socket {socket!r} is not under /run/<RuntimeDirectory>")
    for key in ("User", "KillSignal", "TimeoutStopSec", "Restart", "NoNewPrivileges"):
        if key not in service:
            problems.append(f"{path}: [Service] has no {key}=")


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
    problems, pods, units = [], 0, 0
    for path in sorted(list(root.rglob("*.yaml")) + list(root.rglob("*.yml"))):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as error:
            problems.append(f"{path}: not valid YAML: {error}")
            continue
        for index, document in enumerate(documents):
            if isinstance(document, dict) and document.get("kind") == "Pod":
                pods += 1
                check_pod(document, f"{path}[{index}]", problems)
    for path in sorted(root.rglob("*.service")):
        units += 1
        check_unit(path, problems)
    if pods == 0:
        problems.append(f"{root}: no Pod manifest found")
    if units == 0:
        problems.append(f"{root}: no systemd unit found")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {pods} pod manifest(s), {units} systemd unit(s) under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
