"""A 60 s soak of vmssd (scripts/soak.py): mixed questions at a steady rate while the fake
Azure deletes and creates scale sets and injects faults, then SIGTERM under load.

The script itself fails on RSS growth of 5% or more after warm-up, a growing fd count, a
hot instance answered false, an in-flight call cut off by SIGTERM, a non-zero or late exit,
or a socket file left behind. `make soak` runs the same for SOAK_SECONDS (600 by default).
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT, loopback_env

SECONDS = float(os.environ.get("SOAK_TEST_SECONDS", 60))


def test_a_minute_of_mixed_load_with_churn_and_faults_leaves_memory_and_fds_flat(vmssd_binary):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "soak.py"), "--binary", str(vmssd_binary),
         "--seconds", str(SECONDS), "--rate", "150"],
        capture_output=True, text=True, timeout=SECONDS + 120, env=loopback_env(), cwd=ROOT)
    print(completed.stdout)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert "RSS after" in completed.stdout and "SIGTERM: exit 0" in completed.stdout
