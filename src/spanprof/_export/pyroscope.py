"""Pyroscope exporters: ``/push.v1.PusherService/Push`` (what pyroscope-io 1.x sends) and the
legacy ``/ingest``. Field numbers of PushRequest, RawProfileSeries, RawSample and LabelPair are
from grafana/pyroscope's public ``api/push/v1`` and ``api/types/v1`` definitions."""

from __future__ import annotations

import gzip
import os
import threading
import uuid
import weakref
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlencode

from spanprof._config import Config
from spanprof._export import _proto as pb
from spanprof._export import profile_parts, runtime_labels
from spanprof._export._http import SendResult, auth_headers, get_json, request

# Labels a real Pyroscope server would turn into series labels (one series per span: a
# cardinality explosion). Kept only for a server that says it is spanprof.
SPANPROF_ONLY_LABELS = ("active_span_id",)
PROBE_TIMEOUT_S = 2.0


_PROBES: weakref.WeakSet[_ServerProbe] = weakref.WeakSet()


class _ServerProbe:
    """Asks ``GET /api/v1/info`` once whether the server is spanprof; until it has a definite
    answer (a server that could not be reached), assumes it is not.

    The lock is never held across the request: a fork() while the parent's uploader waited on
    the server left the child's uploader blocked for good on a lock no thread of the child
    holds (and a fork child gets fresh locks anyway)."""

    def __init__(self, endpoint: str, headers: Dict[str, str]) -> None:
        self._url = endpoint + "/api/v1/info"
        self._headers = headers
        self._answer: Optional[bool] = None
        self._lock = threading.Lock()
        _PROBES.add(self)

    def is_spanprof(self) -> bool:
        with self._lock:
            if self._answer is not None:
                return self._answer
        try:
            info = get_json(self._url, self._headers, PROBE_TIMEOUT_S)
        except OSError:
            return False
        answer = isinstance(info, dict) and info.get("server") == "spanprof"
        with self._lock:
            self._answer = answer
        return answer

    def _after_fork_child(self) -> None:
        self._lock = threading.Lock()

    def drop_labels(self) -> Tuple[str, ...]:
        return () if self.is_spanprof() else SPANPROF_ONLY_LABELS


def _reset_probes_in_child() -> None:
    for probe in list(_PROBES):
        probe._after_fork_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_probes_in_child)


def encode_push_request(series_labels: Dict[str, str], pprof_gz: bytes) -> bytes:
    """PushRequest{series=1: RawProfileSeries{labels=1: LabelPair{name=1,value=2},
    samples=2: RawSample{raw_profile=1, ID=2}}}"""
    labels = b"".join(
        pb.field_bytes(1, pb.field_str(1, k) + pb.field_str(2, v)) for k, v in series_labels.items()
    )
    sample = pb.field_bytes(1, pprof_gz) + pb.field_str(2, str(uuid.uuid4()))
    series = labels + pb.field_bytes(2, sample)
    return pb.field_bytes(1, series)


class PushExporter:
    name = "pyroscope"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.url = cfg.endpoint + "/push.v1.PusherService/Push"
        self.headers = auth_headers(cfg)
        self.probe = _ServerProbe(cfg.endpoint, self.headers)

    def series_labels(self, name: str = "process_cpu") -> Dict[str, str]:
        labels = {"__name__": name, "service_name": self.cfg.service_name}
        labels.update(self.cfg.tags)
        labels.update(runtime_labels())
        return labels

    def send(self, profile: Any) -> SendResult:
        drop = self.probe.drop_labels()
        series = b"".join(
            encode_push_request(
                self.series_labels(name), gzip.compress(part.to_pprof(drop_labels=drop), 6)
            )
            for name, part in profile_parts(profile, self.cfg)
        )
        if not series:
            return SendResult.success()
        body = gzip.compress(series, 6)
        headers = {"Content-Type": "application/proto", "Content-Encoding": "gzip", **self.headers}
        return request("POST", self.url, body, headers)


class IngestExporter:
    """Legacy ``POST /ingest?name=app{tags}&from=&until=&format=pprof``: one window per request."""

    name = "ingest"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.headers = auth_headers(cfg)
        self.probe = _ServerProbe(cfg.endpoint, self.headers)

    def app_name(self, suffix: str = "cpu") -> str:
        tags = ",".join(f"{k}={v}" for k, v in self.cfg.tags.items())
        return f"{self.cfg.service_name}.{suffix}{{{tags}}}"

    def send(self, profile: Any) -> SendResult:
        # One request per type (the legacy API takes one profile per request); a retry after the
        # second failed resends both, so /ingest can count a window's CPU part twice then.
        result = SendResult.success()
        for name, part in profile_parts(profile, self.cfg):
            result = self._send_part(part, "wall" if name == "wall" else "cpu")
            if not result.ok:
                return result
        return result

    def _send_part(self, profile: Any, suffix: str) -> SendResult:
        query = urlencode(
            {
                "name": self.app_name(suffix),
                "from": str(profile.start_ns // 1_000_000_000),
                "until": str(-(-profile.end_ns // 1_000_000_000)),
                "format": "pprof",
                "sampleRate": str(self.cfg.sample_rate),
                "spyName": "spanprof",
                "units": "samples" if suffix == "cpu" else "nanoseconds",
                "aggregationType": "sum",
            }
        )
        body = profile.to_pprof(drop_labels=self.probe.drop_labels())
        headers = {"Content-Type": "application/octet-stream", **self.headers}
        return request("POST", f"{self.cfg.endpoint}/ingest?{query}", body, headers)
