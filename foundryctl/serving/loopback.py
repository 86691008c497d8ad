"""HTTP to foundryctl's own servers on 127.0.0.1, never through a proxy from the environment
(http_proxy would otherwise receive the keys and admin token, and loopback would not answer)."""

from __future__ import annotations

import urllib.request
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urlopen(request: urllib.request.Request | str, *, timeout: float) -> Any:
    return _OPENER.open(request, timeout=timeout)
