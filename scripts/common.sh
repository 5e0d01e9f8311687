# Shared by scripts/*: where things live. Source it; do not run it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
# Every CPython >= 3.10 on the machine; the first 3.11 (else the newest) is the tooling interpreter.
spanprof_pythons() {
  local v
  for v in "$PYENV_ROOT"/versions/3.*; do
    [ -x "$v/bin/python" ] || continue
    local mm; mm=$("$v/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    case "$mm" in 3.1[0-9]) echo "$mm $v/bin/python" ;; esac
  done | sort -t. -k2,2n -u
}
venv_python() { echo "$ROOT/.venvs/$1/bin/python"; }
TOOL_PY_VERSION=3.11
