"""`make demo` (scripts/demo.sh) plays the scale-set deletion story to the end and exits 0."""

from __future__ import annotations

import re
import subprocess

from conftest import ROOT, loopback_env


def test_the_demo_answers_every_node_false_with_a_handful_of_listings(vmssd_binary,
                                                                     vmssctl_binary):
    env = loopback_env({"VMSSD_BIN": str(vmssd_binary), "VMSSCTL_BIN": str(vmssctl_binary)})

    result = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], capture_output=True,
                            text=True, timeout=120, env=env, cwd=ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    before, after = result.stdout.split("== 2.")
    assert len(re.findall(r"^  exists workers/virtualMachines/\d+ -> true$", before, re.M)) == 8
    final = after.split("== 4.")[1].split("== 5.")[0]
    assert len(re.findall(r"^  exists workers/virtualMachines/\d+ -> false$", final, re.M)) == 8
    made = int(re.search(r"ARM listings made by vmssd: +(\d+)", result.stdout).group(1))
    naive = int(re.search(r"without a negative cache: +(\d+)", result.stdout).group(1))
    # About one listing per negative TTL of real time (4 on an idle machine); a loaded machine
    # stretches the rounds and adds a few, but never comes near one listing per question.
    assert naive == 112 and 2 <= made <= naive // 8, (made, naive)
    assert "FAILED" not in result.stdout + result.stderr
