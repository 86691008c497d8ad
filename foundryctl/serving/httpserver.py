"""uvicorn, hardened for a deployment's server: a connection must finish its request headers
within HEADER_TIMEOUT seconds (uvicorn has no such timeout: a client that never ends its
headers would hold a connection forever), idle keep-alive connections close after
KEEP_ALIVE_TIMEOUT, and the access log never shows a query string's values (a key sent as
`?api-key=...` stays out of server.log)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
# The largest header block h11 buffers before answering 400.
MAX_HEADER_BYTES = 16 * 1024


class HeaderTimeoutProtocol(H11Protocol):
    """h11 with a deadline for each request's headers, armed when the connection opens and
    again after each response, and dropped once the headers are in."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()


def redact_target(target: str) -> str:
    """A request target with every query value replaced by `***` (the names stay)."""
    parts = urlsplit(target)
    if not parts.query:
        return target
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)] or ["?"]
    return parts.path + "?" + "&".join(f"{name}=***" for name in names)


class RedactQuery(logging.Filter):
    """On uvicorn's access log records (client, method, target, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True


def config(app: Any, port: int) -> Any:
    """uvicorn's Config for `app` on 127.0.0.1:`port`, with the limits above."""
    import uvicorn

    logging.getLogger("uvicorn.access").addFilter(RedactQuery())
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", timeout_graceful_shutdown=30,
                          log_config=None, http=HeaderTimeoutProtocol, timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES)
