"""The deployment files under deploy/: valid, complete, and using only flags vmssd has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
POD = DEPLOY / "kubernetes" / "kube-controller-manager-with-vmssd.yaml"
UNIT = DEPLOY / "systemd" / "vmssd.service"


def check(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEPLOY / "check.py"), str(directory)],
                          capture_output=True, text=True, timeout=60)


def test_the_manifests_and_the_unit_pass_their_checks():
    result = check(DEPLOY)

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_pod_whose_azure_json_is_writable_fails_the_check(tmp_path):
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    pod = copy / "kubernetes" / POD.name
    text = pod.read_text()
    assert "readOnly: true" in text
    pod.write_text(text.replace("readOnly: true", "readOnly: false"))

    result = check(copy)

    assert result.returncode != 0
    assert "azure.json" in result.stdout + result.stderr


def test_every_flag_the_deployments_pass_is_one_vmssd_knows(vmssd_binary):
    known = set(re.findall(r"^\s+--([a-z-]+)", subprocess.run(
        [str(vmssd_binary), "--help"], capture_output=True, text=True, timeout=30).stdout,
        re.MULTILINE))
    documents = [d for d in yaml.safe_load_all(POD.read_text()) if d]
    containers = [c for d in documents for c in d["spec"]["containers"] if c["name"] == "vmssd"]
    pod_arguments = containers[0].get("command", []) + containers[0].get("args", [])
    unit_line = next(line for line in UNIT.read_text().splitlines()
                     if line.startswith("ExecStart="))

    used = {a[2:].split("=", 1)[0] for a in pod_arguments + unit_line.split()
            if a.startswith("--")}

    assert "socket" in known and used, (known, used)
    assert used <= known, f"unknown flags: {sorted(used - known)}"
