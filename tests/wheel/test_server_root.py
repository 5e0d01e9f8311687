"""The wheel's server needs nothing outside the manylinux allow-list: `ldd` names only glibc's
libraries, and the binary runs and serves in a root that holds nothing but itself and those
libraries (no -dev package, no libprotobuf, libsqlite3, libstdc++, ...)."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import SERVER_VERSION, TOOL_LABEL, check_serving, free_port, wait_http, wheel_for

# PEP 599's list of libraries a manylinux wheel may take from the system, plus the dynamic loader
# and the vDSO.
MANYLINUX_LIBS = {
    "libgcc_s.so.1", "libstdc++.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libc.so.6",
    "libnsl.so.1", "libutil.so.1", "libpthread.so.0", "libresolv.so.2", "libX11.so.6",
    "libXext.so.6", "libXrender.so.1", "libICE.so.6", "libSM.so.6", "libGL.so.1",
    "libgobject-2.0.so.0", "libgthread-2.0.so.0", "libglib-2.0.so.0",
    "ld-linux-x86-64.so.2", "linux-vdso.so.1",
}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("server") / "spanprof-server"
    with zipfile.ZipFile(wheel_for(TOOL_LABEL)) as z:
        out.write_bytes(z.read("spanprof/bin/spanprof-server"))
    out.chmod(0o755)
    return out


def ldd(binary: Path) -> dict:
    """soname -> resolved path ("" for the vDSO)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            libs[parts[0]] = parts[2] if len(parts) > 2 and parts[2].startswith("/") else ""
        elif parts:
            libs[os.path.basename(parts[0])] = parts[0] if parts[0].startswith("/") else ""
    return libs


def test_ldd_names_only_manylinux_libraries(server):
    libs = ldd(server)
    assert "libc.so.6" in libs, libs
    assert set(libs) <= MANYLINUX_LIBS, sorted(set(libs) - MANYLINUX_LIBS)
    # Linked statically: not even the C++ runtime comes from the system.
    assert "libstdc++.so.6" not in libs, libs


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root (CI runs as root)")
def test_server_runs_in_a_root_with_only_glibc(server, tmp_path, stop_later):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    shutil.copy2(server, root / "bin" / "spanprof-server")
    for path in filter(None, ldd(server).values()):
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), dest)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert len(files) <= 5, files  # the server, libc, libm, the loader

    version = subprocess.run(
        ["chroot", str(root), "/bin/spanprof-server", "--version"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert version.returncode == 0 and version.stdout.strip() == SERVER_VERSION, version
    port = free_port()
    proc = subprocess.Popen(
        ["chroot", str(root), "/bin/spanprof-server", "--data-dir", "/data",
         "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stop_later(proc)
    wait_http(f"http://127.0.0.1:{port}/api/v1/info", proc)
    check_serving(f"http://127.0.0.1:{port}", ui=False)
