"""HTTP for the exporters, on urllib only (the agent pulls no dependencies). Turns every outcome
into a SendResult: whether it worked, and whether trying again can help."""

from __future__ import annotations

import base64
import email.utils
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Optional

from spanprof import __version__
from spanprof._config import Config

TIMEOUT_S = 10.0
MAX_ERROR_BODY = 300  # characters of a server's error message kept for logs and stats()
USER_AGENT = f"spanprof/{__version__}"


@dataclass
class SendResult:
    ok: bool
    retryable: bool = False
    error: str = ""
    status: Optional[int] = None
    retry_after: Optional[float] = None  # seconds, from a 429/503 Retry-After header

    @classmethod
    def success(cls, status: Optional[int] = None) -> SendResult:
        return cls(ok=True, status=status)


def auth_headers(cfg: Config) -> Dict[str, str]:
    """Authorization, tenant and the user's extra headers, in that order of precedence (the
    user's http_headers may override anything)."""
    h: Dict[str, str] = {}
    if cfg.basic_auth_username or cfg.basic_auth_password:
        cred = f"{cfg.basic_auth_username}:{cfg.basic_auth_password}".encode()
        h["Authorization"] = "Basic " + base64.b64encode(cred).decode("ascii")
    elif cfg.auth_token:
        h["Authorization"] = "Bearer " + cfg.auth_token
    if cfg.tenant_id:
        h["X-Scope-OrgID"] = cfg.tenant_id
    h.update(cfg.http_headers)
    return h


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message(body: bytes) -> str:
    text = body[: MAX_ERROR_BODY * 4].decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and isinstance(obj.get("message"), str):
            text = obj["message"]
    except ValueError:
        pass
    return text[:MAX_ERROR_BODY]


def request(
    method: str,
    url: str,
    body: Optional[bytes],
    headers: Dict[str, str],
    timeout: float = TIMEOUT_S,
) -> SendResult:
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("User-Agent", USER_AGENT)
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return SendResult.success(resp.status)
    except urllib.error.HTTPError as e:
        try:
            msg = _message(e.read())
        except (OSError, ValueError):
            msg = ""
        status = e.code
        err = f"{method} {url}: HTTP {status}" + (f": {msg}" if msg else "")
        retryable = status in (408, 429) or status >= 500
        return SendResult(False, retryable, err, status, _retry_after(e.headers.get("Retry-After")))
    except (TimeoutError, urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return SendResult(False, True, f"{method} {url}: {reason}")


def get_json(url: str, headers: Dict[str, str], timeout: float) -> Any:
    """GET a JSON document. Returns the parsed value, None when the server answered but not with
    JSON (or with an error status), and raises OSError when it could not be reached."""
    req = urllib.request.Request(url, method="GET")
    req.add_header("User-Agent", USER_AGENT)
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read(64 * 1024)
    except urllib.error.HTTPError:
        return None
    except (TimeoutError, urllib.error.URLError) as e:
        raise OSError(str(getattr(e, "reason", e))) from None
    try:
        return json.loads(data)
    except ValueError:
        return None
