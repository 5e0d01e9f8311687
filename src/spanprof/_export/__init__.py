"""Exporters: where each upload window (a ``_native.Profile``) goes.

``send(profile)`` runs on the uploader thread only, never on an application thread, and returns a
SendResult instead of raising, so the uploader decides about retries in one place."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Protocol, Tuple

from spanprof._config import Config
from spanprof._export._http import SendResult

__all__ = ["Exporter", "SendResult", "make_exporter", "profile_parts", "runtime_labels"]


class Exporter(Protocol):
    name: str

    def send(self, profile: object) -> SendResult: ...


def profile_parts(profile: Any, cfg: Config) -> List[Tuple[str, Any]]:
    """The profiles one window sends, as (Pyroscope ``__name__``, profile): the CPU profile as
    ``process_cpu`` and the wall profile (``profile.wall``) as ``wall``; with pyroscope-io's
    oncpu=False, the wall profile alone, typed and named as pyroscope-io's CPU profile."""
    wall = getattr(profile, "wall", None)
    if cfg.wall_as_cpu:
        if wall is None:
            return []
        wall.sample_type = "cpu"
        return [("process_cpu", wall)]
    parts: List[Tuple[str, Any]] = []
    if "cpu" in cfg.profile_types:
        parts.append(("process_cpu", profile))
    if "wall" in cfg.profile_types and wall is not None:
        parts.append(("wall", wall))
    return parts


def runtime_labels() -> Dict[str, str]:
    """The runtime labels pyroscope-io puts on every series."""
    from spanprof import __version__

    v = sys.implementation.version
    version = (
        ".".join(map(str, v[:3]))
        if v.releaselevel == "final" and not v.serial
        else ".".join(map(str, v))
    )
    return {
        "otel.scope.name": "spanprof",
        "otel.scope.version": __version__,
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": version,
    }


def make_exporter(cfg: Config) -> Exporter:
    if cfg.exporter == "file":
        from spanprof._export.files import FileExporter

        return FileExporter(cfg)
    if cfg.exporter == "otlp":
        from spanprof._export.otlp import OtlpProfilesExporter

        return OtlpProfilesExporter(cfg)
    from spanprof._export.pyroscope import IngestExporter, PushExporter

    return IngestExporter(cfg) if cfg.exporter == "ingest" else PushExporter(cfg)
