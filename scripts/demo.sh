#!/usr/bin/env bash
# The scripted demonstration: a scale set deleted under live Nodes, answered from one cached 404.
# TODO(demo): write it once vmssd, vmssctl and the fake Azure's control API are in place.
set -euo pipefail
echo "demo: not written yet; use 'make run' to try vmssd by hand" >&2
exit 1
