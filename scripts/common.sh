# Shared by scripts/*: where things live. Source it; do not run it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
# Debian sid root holding CPython 3.14 and 3.15 (scripts/setup makes it, scripts/sid runs in it).
# Machine-level, so every checkout on the machine shares the one root.
SID_ROOT="${SPANPROF_SID_ROOT:-/var/lib/spanprof/sid}"
SID_PYTHONS="3.14 3.15"
# The venvs scripts/setup-interpreters provides; each is also checked with a `pip install` of a
# clean copy of the checkout (tests/packaging).
PROVISIONED_PYTHONS="3.13t $SID_PYTHONS"
# Interpreters the agent is being ported to (issue #14): built and tested like the others, but
# their failures are reported apart and do not fail the build or CI. Drop a version from this list
# in the commit that makes it pass. 3.13t: tests/api/test_fork.py's fork children send no samples.
PORTING_PYTHONS="${SPANPROF_PORTING-}"
is_porting() { case " $PORTING_PYTHONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
SID_STAMP="$SID_ROOT/.spanprof-root"
# Marks a venv whose interpreter lives in the sid root: run it through scripts/sid.
SID_VENV_MARK=".spanprof-sid"
# Every CPython >= 3.10 as "LABEL PYTHON [sid]": the host's under $PYENV_ROOT/versions (a
# free-threaded build is labelled 3.13t, so it never collides with 3.13), then the sid root's
# versions the host lacks. The first 3.11 (else the newest) is the tooling interpreter.
spanprof_pythons() {
  local v py label
  for v in "$PYENV_ROOT"/versions/3.*; do
    py=""
    for py in "$v"/bin/python "$v"/bin/python3 "$v"/bin/python3.*t; do [ -x "$py" ] && break; done
    [ -x "$py" ] || continue
    label=$("$py" -c 'import sys, sysconfig
t = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
print("%d.%d%s" % (sys.version_info[:2] + (t,)))') || continue
    case "$label" in 3.1[0-9] | 3.1[0-9]t) echo "$label $py" ;; esac
  done | sort -s -k1,1V -u
  if [ -f "$SID_STAMP" ]; then
    for v in $SID_PYTHONS; do
      [ -x "$SID_ROOT/usr/bin/python$v" ] || continue
      [ -x "$PYENV_ROOT/versions/$v/bin/python" ] || echo "$v /usr/bin/python$v sid"
    done
  fi
}
venv_python() { echo "$ROOT/.venvs/$1/bin/python"; }
# The venvs of supported CPythons (a checkout may still hold one of an interpreter since dropped).
spanprof_venvs() {
  local venv
  for venv in "$ROOT"/.venvs/3.*; do
    case "$(basename "$venv")" in 3.1[0-9] | 3.1[0-9]t) [ -d "$venv" ] && echo "$venv" ;; esac
  done
}
# venv_run VENV CMD...: runs CMD where VENV's interpreter lives (the host or the sid root).
venv_run() {
  local venv="$1"; shift
  if [ -f "$venv/$SID_VENV_MARK" ]; then "$ROOT/scripts/sid" "$@"; else "$@"; fi
}
TOOL_PY_VERSION=3.11
# apt_install PKG...: installs Debian packages from the host's own sources (sudo when not root).
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}
