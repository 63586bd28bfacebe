"""Python gRPC stubs for the contract in Protos/, generated at test time.

The stubs are rebuilt with grpc_tools.protoc into tests/gen/ (ignored by git) whenever a .proto
file or the grpcio-tools version changes, so the tests always speak the committed contract.

The health proto's Python module is placed at `vmssd_health.v1` rather than `grpc.health.v1`:
a top-level `grpc` directory on sys.path would shadow the grpcio package itself. Import health
messages only through `load()`: protobuf refuses a second definition of `grpc.health.v1.*` in one
process, so when grpcio-health-checking's `grpc_health.v1` was imported first, `load()` hands
that (wire-identical) module out instead.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "Protos"
GEN = ROOT / "tests" / "gen"
INSTANCES_PROTO = "cloudprovider/instances/v1/instances.proto"
HEALTH_PROTO = "grpc/health/v1/health.proto"
DESCRIPTOR_SET = "descriptors.pb"


def _fingerprint() -> str:
    from grpc_tools import protoc  # noqa: F401  (imported for its version)
    import grpc_tools

    digest = hashlib.sha256()
    digest.update(getattr(grpc_tools, "__version__", "unknown").encode())
    for proto in sorted(PROTOS.rglob("*.proto")):
        digest.update(str(proto.relative_to(PROTOS)).encode())
        digest.update(proto.read_bytes())
    return digest.hexdigest()


def _run_protoc(args: list[str]) -> None:
    from grpc_tools import protoc

    include = Path(protoc.__file__).resolve().parent / "_proto"
    status = protoc.main(["grpc_tools.protoc", f"-I{PROTOS}", f"-I{include}", *args])
    if status != 0:
        raise RuntimeError(f"grpc_tools.protoc failed ({status}) for {args}")


def generate(out: Path = GEN) -> Path:
    """Generates the stubs into `out` unless they are current; returns `out`."""
    stamp = out / ".fingerprint"
    fingerprint = _fingerprint()
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".gen-", dir=out.parent))
    try:
        _run_protoc([
            f"--python_out={scratch}",
            f"--grpc_python_out={scratch}",
            INSTANCES_PROTO,
            HEALTH_PROTO,
        ])
        _run_protoc([
            "--include_imports",
            f"--descriptor_set_out={scratch / DESCRIPTOR_SET}",
            INSTANCES_PROTO,
            HEALTH_PROTO,
        ])
        health_dir = scratch / "vmssd_health" / "v1"
        health_dir.mkdir(parents=True)
        for name in ("health_pb2.py", "health_pb2_grpc.py"):
            text = (scratch / "grpc" / "health" / "v1" / name).read_text()
            text = text.replace("from grpc.health.v1 import", "from vmssd_health.v1 import")
            (health_dir / name).write_text(text)
        shutil.rmtree(scratch / "grpc")
        (scratch / ".fingerprint").write_text(fingerprint)
        if out.exists():
            shutil.rmtree(out)
        os.replace(scratch, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def load(out: Path = GEN) -> types.SimpleNamespace:
    """Generates if needed and imports the stubs.

    Returns a namespace with `instances_pb2`, `instances_pb2_grpc`, `health_pb2`,
    `health_pb2_grpc` and `descriptor_set` (the path of a FileDescriptorSet with imports).
    """
    generate(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    health_package = "vmssd_health.v1"
    if "grpc_health.v1.health_pb2" in sys.modules:
        health_package = "grpc_health.v1"
    return types.SimpleNamespace(
        instances_pb2=importlib.import_module("cloudprovider.instances.v1.instances_pb2"),
        instances_pb2_grpc=importlib.import_module("cloudprovider.instances.v1.instances_pb2_grpc"),
        health_pb2=importlib.import_module(f"{health_package}.health_pb2"),
        health_pb2_grpc=importlib.import_module(f"{health_package}.health_pb2_grpc"),
        descriptor_set=out / DESCRIPTOR_SET,
    )
