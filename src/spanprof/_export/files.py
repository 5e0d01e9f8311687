"""File exporter: ``server_address="file:///dir"`` writes one gzipped pprof per upload window,
with every label kept (``{service}-{pid}-{start_ms}.pb.gz``). Written to a temporary name and
renamed, so a reader never sees half a file."""

from __future__ import annotations

import gzip
import os
import re
from typing import Any

from spanprof._config import Config
from spanprof._export import profile_parts
from spanprof._export._http import SendResult


class FileExporter:
    name = "file"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.directory = cfg.file_dir
        self.stem = re.sub(r"[^A-Za-z0-9_.-]", "_", cfg.service_name) or "profile"

    def send(self, profile: Any) -> SendResult:
        for name, part in profile_parts(profile, self.cfg):
            result = self._write(part, ".wall" if name == "wall" else "")
            if not result.ok:
                return result
        return SendResult.success()

    def _write(self, profile: Any, kind: str) -> SendResult:
        data = gzip.compress(profile.to_pprof(), 6)
        base = os.path.join(
            # `{service}.wall-…`: a `{service}-*.pb.gz` glob (pprof merges what it matches) must
            # not mix the wall profile into the CPU ones.
            self.directory,
            f"{self.stem}{kind}-{os.getpid()}-{profile.start_ns // 1_000_000}",
        )
        path, n = f"{base}.pb.gz", 1
        while os.path.exists(path):  # two windows within one millisecond (a final flush)
            path, n = f"{base}-{n}.pb.gz", n + 1
        tmp = f"{path}.tmp"
        try:
            os.makedirs(self.directory, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            # A full or read-only disk does not heal by retrying within seconds.
            return SendResult(False, False, f"write {path}: {e}")
        return SendResult.success()
