"""A stateful fake of the Azure HTTP APIs the azure backend calls, on the `responses` library.

The backend's SDK clients send real requests through azure-core's requests transport;
`responses` answers them here, so every request is recorded (method, path, api-version,
body) for the contract tests to assert. Resources PUT are kept and answered on GET, in the
shapes of the azure-rest-api-specs examples, so a whole plan/apply/destroy cycle runs.
Each API family lives in a module under `families/` with an `install(fake)` function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

ARM = "https://management.azure.com"
Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body (or bytes / None)
Handler = Callable[["Call", re.Match], Reply]


@dataclass
class Call:
    method: str
    url: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, or bytes when not JSON
    raw: bytes | None = None  # the body exactly as sent (blob uploads)

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")


@dataclass
class Injected:
    method: str
    pattern: re.Pattern
    reply: Reply
    times: int


@dataclass
class FakeAzure:
    mock: responses.RequestsMock
    subscription_id: str
    resource_group: str
    location: str
    calls: list[Call] = field(default_factory=list)
    # ARM id (lower case) -> the resource's JSON as Azure returns it
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Anything else a family keeps (blobs, keys, job progress...)
    state: dict[str, Any] = field(default_factory=dict)
    _injected: list[Injected] = field(default_factory=list)
    # What a family started (a loopback server) and stops at teardown.
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    # Check every recorded ARM request against tests/specs at teardown (off only for tests of that check).
    spec_check: bool = True

    # -- routing ---------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler, *, host: str = ARM) -> None:
        """Answer `method` on URLs whose path matches `pattern` (a regex, case-insensitive)."""
        host_pattern = host if host.startswith("^") else re.escape(host)
        regex = re.compile(host_pattern + pattern + r"(?:\?.*)?$", re.IGNORECASE)
        path_regex = re.compile("^" + pattern + "$", re.IGNORECASE)

        def callback(request: Any) -> tuple[int, dict[str, str], Any]:
            call = self._record(request)
            for injected in self._injected:
                if injected.times and injected.method == call.method and injected.pattern.search(call.path):
                    injected.times -= 1
                    return _encode(injected.reply)
            match = path_regex.match(call.path)
            assert match is not None, call.path
            return _encode(handler(call, match))

        self.mock.add_callback(method, regex, callback=callback)

    def inject(self, method: str, path_pattern: str, reply: Reply, times: int = 1) -> None:
        """Answer the next `times` matching requests with `reply` (throttling, failures)."""
        self._injected.append(Injected(method, re.compile(path_pattern, re.IGNORECASE), reply, times))

    def _record(self, request: Any) -> Call:
        split = urlsplit(request.url)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        raw = request.body
        if hasattr(raw, "read"):
            raw = raw.read()
        body: Any = raw
        if isinstance(raw, (bytes, str)) and raw:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                body = raw if isinstance(raw, bytes) else raw.encode()
        call = Call(request.method, request.url, split.path, query, dict(request.headers), body,
                    raw.encode() if isinstance(raw, str) else raw)
        self.calls.append(call)
        return call

    # -- what tests ask ----------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[Call]:
        """Recorded calls, by method and a regex on the path."""
        regex = re.compile(path, re.IGNORECASE) if path else None
        return [c for c in self.calls
                if (method is None or c.method == method) and (regex is None or regex.search(c.path))]

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method in ("PUT", "PATCH", "POST", "DELETE")]

    # -- shared building blocks --------------------------------------------------------

    @property
    def rg_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    def get(self, resource_id: str) -> dict[str, Any] | None:
        return self.resources.get(resource_id.lower())

    def put(self, resource_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.resources[resource_id.lower()] = body
        return body

    def delete(self, resource_id: str) -> dict[str, Any] | None:
        return self.resources.pop(resource_id.lower(), None)

    def children(self, parent_id: str, type_segment: str) -> list[dict[str, Any]]:
        prefix = f"{parent_id}/{type_segment}/".lower()
        return [r for k, r in self.resources.items() if k.startswith(prefix) and "/" not in k[len(prefix):]]


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """ARM's error body: {"error": {"code", "message"}}."""
    return status, headers or {}, {"error": {"code": code, "message": message}}


def not_found(resource_id: str) -> Reply:
    return arm_error(404, "ResourceNotFound", f"The Resource '{resource_id}' was not found.")


def _encode(reply: Reply) -> tuple[int, dict[str, str], Any]:
    status, headers, body = reply
    headers = dict(headers)
    if body is None:
        return status, headers, ""
    if isinstance(body, (bytes, str)):
        return status, headers, body
    headers.setdefault("Content-Type", "application/json")
    return status, headers, json.dumps(body)


def route_openai_through_fake(monkeypatch: Any) -> None:
    """Send the `openai` client's requests (it speaks httpx, which `responses` does not see)
    through `requests`, so the fake answers them like the SDKs' own calls."""
    import functools

    import openai
    import requests

    try:
        import httpx2 as httpx  # the openai client's HTTP library in this release line
    except ImportError:  # pragma: no cover - older openai releases use httpx
        import httpx  # type: ignore[no-redef]

    class ViaRequests(httpx.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            # httpx lower-cases header names; the fake's routes read them as the SDKs write them.
            headers = {"-".join(part.capitalize() for part in k.split("-")): v for k, v in request.headers.items()}
            sent = requests.request(request.method, str(request.url), headers=headers, data=request.read(),
                                    timeout=60)
            headers = {k: v for k, v in sent.headers.items()
                       if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")}
            return httpx.Response(sent.status_code, headers=headers, content=sent.content, request=request)

    monkeypatch.setattr(openai, "OpenAI", functools.partial(openai.OpenAI,
                                                            http_client=httpx.Client(transport=ViaRequests())))
