"""Configuration: the keywords of ``pyroscope.configure`` (pyroscope-io 1.x), validated, plus the
environment variables read by ``spanprof run`` (SPANPROF_*, PYROSCOPE_*, OTEL_*).

Every check raises ``ValueError`` naming the offending keyword, so a typo fails at ``configure``
instead of silently profiling with a default.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit


class LineNo(enum.IntEnum):
    """Which line a frame reports (pyroscope-io's ``LineNo``)."""

    LastInstruction = 0  # the line being executed
    First = 1  # the function's first line
    NoLine = 2  # no line at all (one node per function)


class ProfilerImplementation(enum.IntEnum):
    """Accepted for pyroscope-io 1.4 compatibility; spanprof has one (in-process) sampler."""

    PySpy = 0
    Stack = 1


EXPORTERS = ("pyroscope", "ingest", "otlp", "file")
MAX_SAMPLE_RATE = 1000  # Hz; per-thread CPU timers are capped by the kernel tick anyway
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_RESERVED_LABELS = {
    "__name__",
    "service_name",
    "span_id",
    "span_name",
    "trace_id",
    "active_span_id",
}


@dataclass(frozen=True)
class Config:
    application_name: str = ""
    server_address: str = "http://localhost:4040"
    basic_auth_username: str = ""
    basic_auth_password: str = ""
    auth_token: str = ""
    enable_logging: bool = False
    sample_rate: int = 100
    gil_only: bool = True
    report_pid: bool = False
    report_thread_id: bool = False
    report_thread_name: bool = False
    tags: Dict[str, str] = field(default_factory=dict)
    tenant_id: str = ""
    http_headers: Dict[str, str] = field(default_factory=dict)
    line_no: LineNo = LineNo.LastInstruction
    upload_interval: float = 10.0
    cpu_enabled: bool = True
    # "cpu" (CPU time, process_cpu) and/or "wall" (wall-clock time, every thread and suspended
    # asyncio task, idle included).
    profile_types: Tuple[str, ...] = ("cpu",)
    # pyroscope-io's oncpu=False: wall-clock samples sent as its CPU profile type (process_cpu,
    # cpu/nanoseconds), so existing Pyroscope and Grafana set-ups keep working.
    wall_as_cpu: bool = False
    exporter: str = "pyroscope"  # derived from server_address unless given
    # Exporter endpoint without the exporter-selecting scheme prefix (otlp+http -> http).
    endpoint: str = "http://localhost:4040"
    file_dir: str = ""

    @property
    def service_name(self) -> str:
        return self.application_name or _default_service_name()


def _default_service_name() -> str:
    prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else ""
    return prog.removesuffix(".py") if prog and prog != "-c" else "unknown_service:python"


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"spanprof.configure: {name} must be True or False, got {value!r}")


def _str(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise ValueError(f"spanprof.configure: {name} must be a string, got {type(value).__name__}")


def _str_dict(name: str, value: Any, check_keys: bool) -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(
            f"spanprof.configure: {name} must be a dict of str to str, got {type(value).__name__}"
        )
    out: Dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"spanprof.configure: {name} must map str to str, got {k!r}: {v!r}")
        if check_keys:
            check_label_name(name, k)
        out[k] = v
    return out


def check_label_name(what: str, key: str, reserved: bool = True) -> None:
    """Series labels (``reserved``) may not shadow the agent's own; thread tags may (pyroscope-otel
    sets span_id/span_name/trace_id as thread tags)."""
    if not _LABEL_NAME.match(key):
        raise ValueError(
            f"spanprof: {what}: invalid label name {key!r} (letters, digits, '_' and '.', not starting with a digit)"
        )
    if key.startswith("__") or (reserved and key in _RESERVED_LABELS):
        raise ValueError(f"spanprof: {what}: label name {key!r} is reserved")


def _parse_server_address(value: str, exporter: Optional[str]) -> Tuple[str, str, str]:
    """Returns (exporter, endpoint, file_dir) or raises ValueError naming server_address."""
    bad = f"spanprof.configure: server_address {value!r} is not a valid URL"
    try:
        parts = urlsplit(value)
    except ValueError as e:
        raise ValueError(f"{bad}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"{bad}: use file:///absolute/dir")
        if exporter not in (None, "file"):
            raise ValueError(
                f"spanprof.configure: exporter={exporter!r} cannot write to a file:// server_address"
            )
        return "file", "", unquote(parts.path)
    if scheme in ("otlp+http", "otlp+https", "otlp"):
        if exporter not in (None, "otlp"):
            raise ValueError(
                f"spanprof.configure: exporter={exporter!r} conflicts with server_address {value!r}"
            )
        scheme = "https" if scheme == "otlp+https" else "http"
        exporter = "otlp"
    elif scheme not in ("http", "https"):
        raise ValueError(f"{bad}: scheme must be http, https, otlp+http, otlp+https or file")
    if not parts.hostname:
        raise ValueError(f"{bad}: no host")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValueError(f"{bad}: bad port") from None
    if exporter == "file":
        raise ValueError("spanprof.configure: exporter='file' needs server_address='file:///dir'")
    endpoint = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    return exporter or "pyroscope", endpoint, ""


PROFILE_TYPES = ("cpu", "wall")


def parse_profile_types(value: Any) -> Tuple[str, ...]:
    """``profile_types``: an iterable of "cpu"/"wall", or a comma-separated str; default cpu."""
    if value is None:
        return ("cpu",)
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in PROFILE_TYPES:
            raise ValueError(
                f"spanprof.configure: profile_types: unknown type {item!r} (known: cpu, wall)"
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("spanprof.configure: profile_types is empty (known: cpu, wall)")
    return tuple(t for t in PROFILE_TYPES if t in out)


def build(kwargs: Mapping[str, Any]) -> Config:
    """Validates ``configure`` keywords (pyroscope-io 1.x names and defaults) into a Config."""
    known = {
        "application_name", "app_name", "server_address", "basic_auth_username",
        "basic_auth_password", "auth_token", "enable_logging", "sample_rate", "oncpu", "native",
        "gil_only", "report_pid", "report_thread_id", "report_thread_name", "tags", "tenant_id",
        "http_headers", "line_no", "upload_interval", "detect_subprocesses", "exporter",
        "mem_enabled", "mem_max_nframe", "mem_heap_sample_size", "mem_enable_mem_domain",
        "cpu_enabled", "cpu_implementation", "profile_types",
    }  # fmt: skip
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"spanprof.configure: unknown keyword argument(s): {', '.join(unknown)}")
    kw = dict(kwargs)

    app = _str("application_name", kw.get("application_name"))
    if kw.get("app_name") is not None:
        warnings.warn(
            "app_name is deprecated, use application_name", DeprecationWarning, stacklevel=3
        )
        app = _str("app_name", kw["app_name"])
    if kw.get("native") is not None:
        warnings.warn("native is deprecated and not supported", DeprecationWarning, stacklevel=3)
    if kw.get("detect_subprocesses") is not None:
        _bool("detect_subprocesses", kw["detect_subprocesses"])
        warnings.warn(
            "detect_subprocesses is deprecated and does nothing: forked children profile "
            "themselves; use `spanprof run` to profile spawned programs",
            DeprecationWarning,
            stacklevel=3,
        )
    token = _str("auth_token", kw.get("auth_token"))
    if token:
        warnings.warn(
            "auth_token is deprecated, use basic_auth_username/basic_auth_password or "
            "http_headers; it is sent as 'Authorization: Bearer'",
            DeprecationWarning,
            stacklevel=3,
        )

    oncpu = _bool("oncpu", kw.get("oncpu", True))
    types = parse_profile_types(kw.get("profile_types"))
    wall_as_cpu = False
    if not oncpu:
        if kw.get("profile_types") is not None:
            raise ValueError(
                "spanprof.configure: oncpu=False (pyroscope-io's wall-clock mode, sent as "
                "process_cpu) and profile_types cannot be combined; use profile_types=('wall',) "
                "for a separate wall profile"
            )
        types, wall_as_cpu = ("wall",), True
    if kw.get("mem_enabled"):
        warnings.warn(
            "mem_enabled: memory profiling is not supported by spanprof; only CPU is profiled",
            RuntimeWarning,
            stacklevel=3,
        )
    for name in ("mem_max_nframe", "mem_heap_sample_size"):
        if name in kw and (
            not isinstance(kw[name], int) or isinstance(kw[name], bool) or kw[name] < 0
        ):
            raise ValueError(
                f"spanprof.configure: {name} must be a non-negative int, got {kw[name]!r}"
            )
    if "mem_enable_mem_domain" in kw:
        _bool("mem_enable_mem_domain", kw["mem_enable_mem_domain"])
    if "cpu_implementation" in kw:
        try:
            ProfilerImplementation(kw["cpu_implementation"])
        except ValueError:
            raise ValueError(
                f"spanprof.configure: cpu_implementation must be a ProfilerImplementation, got {kw['cpu_implementation']!r}"
            ) from None

    rate = kw.get("sample_rate", 100)
    if not isinstance(rate, int) or isinstance(rate, bool) or not 1 <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"spanprof.configure: sample_rate must be an int in 1..{MAX_SAMPLE_RATE} (Hz), got {rate!r}"
        )
    interval = kw.get("upload_interval", 10)
    if (
        not isinstance(interval, (int, float))
        or isinstance(interval, bool)
        or not 0 < interval <= 3600
    ):
        raise ValueError(
            f"spanprof.configure: upload_interval must be a number of seconds in (0, 3600], got {interval!r}"
        )
    line_no = kw.get("line_no", LineNo.LastInstruction)
    try:
        line_no = LineNo(getattr(line_no, "value", line_no))
    except ValueError:
        raise ValueError(f"spanprof.configure: line_no must be a LineNo, got {line_no!r}") from None

    exporter = kw.get("exporter")
    if exporter is not None and exporter not in EXPORTERS:
        raise ValueError(
            f"spanprof.configure: exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}"
        )
    address = (
        _str("server_address", kw.get("server_address", "http://localhost:4040"))
        or "http://localhost:4040"
    )
    exporter, endpoint, file_dir = _parse_server_address(address, exporter)

    user = _str("basic_auth_username", kw.get("basic_auth_username"))
    password = _str("basic_auth_password", kw.get("basic_auth_password"))
    if token and (user or password):
        raise ValueError(
            "spanprof.configure: give either basic_auth_username/basic_auth_password or auth_token, not both"
        )
    headers = _str_dict("http_headers", kw.get("http_headers"), check_keys=False)
    for k, v in headers.items():
        if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", k) or "\n" in v or "\r" in v:
            raise ValueError(f"spanprof.configure: http_headers: invalid header {k!r}")

    return Config(
        application_name=app,
        server_address=address,
        basic_auth_username=user,
        basic_auth_password=password,
        auth_token=token,
        enable_logging=_bool("enable_logging", kw.get("enable_logging", False)),
        sample_rate=rate,
        gil_only=_bool("gil_only", kw.get("gil_only", True)),
        report_pid=_bool("report_pid", kw.get("report_pid", False)),
        report_thread_id=_bool("report_thread_id", kw.get("report_thread_id", False)),
        report_thread_name=_bool("report_thread_name", kw.get("report_thread_name", False)),
        tags=_str_dict("tags", kw.get("tags"), check_keys=True),
        tenant_id=_str("tenant_id", kw.get("tenant_id")),
        http_headers=headers,
        line_no=line_no,
        upload_interval=float(interval),
        cpu_enabled=_bool("cpu_enabled", kw.get("cpu_enabled", True)),
        profile_types=types,
        wall_as_cpu=wall_as_cpu,
        exporter=exporter,
        endpoint=endpoint,
        file_dir=file_dir,
    )


# ---- environment (spanprof run) -------------------------------------------------------------

# keyword -> kind; read from SPANPROF_<KEYWORD>, else PYROSCOPE_<KEYWORD>
_ENV_KEYS: Dict[str, str] = {
    "application_name": "str",
    "server_address": "str",
    "basic_auth_username": "str",
    "basic_auth_password": "str",
    "auth_token": "str",
    "enable_logging": "bool",
    "sample_rate": "int",
    "gil_only": "bool",
    "report_pid": "bool",
    "report_thread_id": "bool",
    "report_thread_name": "bool",
    "tags": "map",
    "tenant_id": "str",
    "http_headers": "map",
    "upload_interval": "float",
    "exporter": "str",
    "profile_types": "str",
    "oncpu": "bool",
}


def _env_bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"spanprof: environment variable {name}={raw!r} is not a boolean (true/false)")


def parse_map(name: str, raw: str) -> Dict[str, str]:
    """``k=v,k2=v2`` (OTEL_RESOURCE_ATTRIBUTES style, values %-decoded) or a JSON object."""
    raw = raw.strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            obj = json.loads(raw)
        except ValueError as e:
            raise ValueError(f"spanprof: {name} is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"spanprof: {name} must be a JSON object")
        return {str(k): str(v) for k, v in obj.items()}
    out = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"spanprof: {name}: expected key=value, got {item!r}")
        out[unquote(k.strip())] = unquote(v.strip())
    return out


def from_env(environ: Mapping[str, str]) -> Dict[str, Any]:
    """configure() keywords from SPANPROF_* (first), PYROSCOPE_* and OTEL_* variables."""
    kw: Dict[str, Any] = {}
    for key, kind in _ENV_KEYS.items():
        for prefix in ("SPANPROF_", "PYROSCOPE_"):
            name = prefix + key.upper()
            if name not in environ:
                continue
            raw = environ[name]
            try:
                if kind == "bool":
                    kw[key] = _env_bool(name, raw)
                elif kind == "int":
                    kw[key] = int(raw)
                elif kind == "float":
                    kw[key] = float(raw)
                elif kind == "map":
                    kw[key] = parse_map(name, raw)
                else:
                    kw[key] = raw
            except ValueError as e:
                raise ValueError(f"spanprof: environment variable {name}={raw!r}: {e}") from None
            break
    if "application_name" not in kw and "PYROSCOPE_APP_NAME" in environ:
        kw["application_name"] = environ["PYROSCOPE_APP_NAME"]
    resource = parse_map("OTEL_RESOURCE_ATTRIBUTES", environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    service = environ.get("OTEL_SERVICE_NAME") or resource.pop("service.name", "")
    resource.pop("service.name", None)
    if "application_name" not in kw and service:
        kw["application_name"] = service
    if resource:
        tags = {
            k: v for k, v in resource.items() if _LABEL_NAME.match(k) and k not in _RESERVED_LABELS
        }
        tags.update(kw.get("tags", {}))
        kw["tags"] = tags
    return kw
