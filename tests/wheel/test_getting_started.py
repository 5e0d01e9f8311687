"""docs/getting-started.md followed literally by a new user, in a fresh HOME outside the checkout:
its install block (the package name replaced by the wheel that scripts/package built, the only
change), then its commands in the venv it makes. The commands that take the fixed ports 4040 and
4318 run as written inside a network namespace of their own (root: CI runs as root), so they
cannot collide with anything else on the machine; the file-exporter commands write to a private
directory instead of /tmp/profiles."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    SERVER_VERSION,
    TOOL_LABEL,
    UI_VERSION,
    base_python,
    run_checked,
    user_env,
    wheel_for,
)

DOC = (ROOT / "docs" / "getting-started.md").read_text()
PPROF_DIR = ROOT / "build" / "tools"
# Brings up the loopback interface of a fresh network namespace (SIOCSIFFLAGS: IFF_UP |
# IFF_LOOPBACK | IFF_RUNNING), then runs the script; no iproute2 needed.
NETNS_BOOT = (
    "import fcntl, os, socket, struct, sys\n"
    "fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8914,"
    " struct.pack('16sh', b'lo', 0x1 | 0x8 | 0x40))\n"
    "os.execvp('bash', ['bash', '-euo', 'pipefail', '-c', sys.argv[1]])\n"
)


def bash_blocks() -> list:
    return re.findall(r"```bash\n(.*?)```", DOC, re.S)


def block(first: str) -> str:
    found = [b for b in bash_blocks() if b.startswith(first)]
    assert len(found) == 1, f"no single bash block starting with {first!r}"
    return found[0]


def python_block(first: str) -> str:
    found = [b for b in re.findall(r"```python\n(.*?)```", DOC, re.S) if b.startswith(first)]
    assert len(found) == 1, f"no single python block starting with {first!r}"
    return found[0]


def commands(text: str) -> list:
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


def shell_env(home: Path, venv: bool) -> dict:
    env = user_env(home / "spanprof-venv" if venv else None)
    env["HOME"] = str(home)
    if not venv:  # `python3` is the tooling CPython, as on a machine with only that one
        shims = home / ".shims"
        shims.mkdir(exist_ok=True)
        if not (shims / "python3").exists():
            (shims / "python3").symlink_to(base_python(TOOL_LABEL))
        env["PATH"] = f"{shims}{os.pathsep}{env['PATH']}"
    else:
        env["PATH"] += f"{os.pathsep}{PPROF_DIR}"  # Google's pprof, for the docs' `pprof -top`
    return env


def sh(script: str, home: Path, venv: bool = True, netns: bool = False, timeout: float = 600):
    argv = ["bash", "-euo", "pipefail", "-c", script]
    if netns:
        python = str(home / "spanprof-venv" / "bin" / "python")
        argv = ["unshare", "-n", python, "-c", NETNS_BOOT, script]
    return run_checked(argv, home, shell_env(home, venv), timeout)


def test_1_install(home):
    install = block("python3 -m venv")
    assert "pip install 'spanprof[otel,demo]'" in install
    script = install.replace("'spanprof[otel,demo]'", f"'{wheel_for(TOOL_LABEL)}[otel,demo]'")
    out = sh(script, home, venv=False, timeout=900)
    assert re.search(rf"^server {re.escape(SERVER_VERSION)} \(.*/spanprof-venv/", out, re.M), out
    assert re.search(rf"^ui {re.escape(UI_VERSION)} \(.*/spanprof-venv/", out, re.M), out
    assert re.search(r"sampler\s+working", out), out


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

WAIT_4040 = (
    'for i in $(seq 300); do python -c "import urllib.request as u;'
    " u.urlopen('http://127.0.0.1:4040/api/v1/info', timeout=1)\" 2>/dev/null && break;"
    " sleep 0.2; done\n"
)


@needs_root
def test_2_demo(home):
    (cmd,) = commands(block("spanprof demo"))
    assert cmd == "spanprof demo"
    # Runs until Ctrl-C: stopped with SIGINT once it has served requests for one report period.
    script = (
        f"{cmd} > demo.log 2>&1 & pid=$!\n"
        "for i in $(seq 600); do grep -q 'requests sent' demo.log && break; sleep 0.2; done\n"
        "kill -INT $pid; wait $pid; cat demo.log\n"
    )
    out = sh(script, home, netns=True)
    assert "UI at http://127.0.0.1:4040/" in out and "requests sent" in out, out


@needs_root
def test_3_serve_run_and_in_code(home):
    (serve,) = commands(block("spanprof serve"))
    (run,) = commands(block("spanprof run -n my-app -s http://"))
    (home / "app.py").write_text(python_block("# app.py"))
    # The in-code block configures; a span of work and the end of the program follow it.
    (home / "in_code.py").write_text(
        python_block("import spanprof")
        + "\nwith trace.get_tracer('my-app').start_as_current_span('in-code-job'):\n"
        "    sum(i * i % 7 for i in range(3_000_000))\n"
        "provider.shutdown()\nspanprof.shutdown()\n"
    )
    check = (
        "import json, time, urllib.request as u\n"
        "def get(p): return json.load(u.urlopen('http://127.0.0.1:4040' + p, timeout=5))\n"
        "deadline = time.time() + 60\n"
        "while True:\n"
        "    now = int(time.time() * 1000)\n"
        "    ts = get(f'/api/v1/traces?service=my-app&from={now - 600000}&to={now + 60000}')\n"
        "    names = {t['root_name'] for t in ts['traces'] if t['has_profile']}\n"
        "    if {'job', 'in-code-job'} <= names or time.time() > deadline: break\n"
        "    time.sleep(1)\n"
        "print('traces with profiles:', sorted(names))\n"
        "fg = get(f'/api/v1/flamegraph?service=my-app&span_name=job&from={now - 600000}&to={now}')\n"
        "print('job samples:', fg['sample_count'], 'crunch' in fg['names'])\n"
    )
    (home / "check.py").write_text(check)
    script = (
        f"{serve} > serve.log 2>&1 & pid=$!\n{WAIT_4040}"
        f"{run}\npython in_code.py\npython check.py\nkill -TERM $pid; wait $pid\n"
    )
    out = sh(script, home, netns=True)
    # app.py's own provider exports nothing, so its spans are known from the profiles only;
    # the in-code example exports its traces (OTLP on 4318) next to its profiles.
    assert "'in-code-job'" in out, out
    # spanprof run's profiles of app.py carry its `job` spans.
    assert re.search(r"job samples: [1-9]\d* True", out), out


def test_4_files_and_record(home):
    lines = commands(block("spanprof run -n my-app -s file://"))
    private = home / "profiles"
    script = (
        "\n".join(lines).replace("go tool pprof", "pprof").replace("/tmp/profiles", str(private))
    )
    out = sh(script, home)
    assert "crunch" in out, out
    record = block("spanprof record -o out.pprof")
    out = sh("\n".join(commands(record)).replace("go tool pprof -http=: out.pprof", ""), home)
    assert "crunch" in out, out
    assert shlex.split(commands(record)[1])[0] == "pprof"
