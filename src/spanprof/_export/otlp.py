"""OTLP profiles exporter: ``POST {endpoint}/v1development/profiles`` with the
ExportProfilesServiceRequest that ``Profile.to_otlp`` encodes (a Link per span-labelled sample)."""

from __future__ import annotations

import os
from typing import Any, Dict

from spanprof._config import Config
from spanprof._export import profile_parts, runtime_labels
from spanprof._export._http import SendResult, auth_headers, request

PATH = "/v1development/profiles"


class OtlpProfilesExporter:
    name = "otlp"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.url = cfg.endpoint + PATH
        self.headers = auth_headers(cfg)

    def resource_attrs(self) -> Dict[str, str]:
        rt = runtime_labels()
        attrs = {
            "service.name": self.cfg.service_name,
            "process.pid": str(os.getpid()),
            "process.runtime.name": rt["process.runtime.name"],
            "process.runtime.version": rt["process.runtime.version"],
            "telemetry.sdk.name": "spanprof",
            "telemetry.sdk.version": rt["otel.scope.version"],
        }
        attrs.update(self.cfg.tags)
        return attrs

    def send(self, profile: Any) -> SendResult:
        headers = {"Content-Type": "application/x-protobuf", **self.headers}
        result = SendResult.success()
        for _name, part in profile_parts(profile, self.cfg):
            result = request(
                "POST", self.url, part.to_otlp(self.resource_attrs(), "spanprof"), headers
            )
            if not result.ok:
                return result
        return result
