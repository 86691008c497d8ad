"""The OpenAI-compatible HTTP app of a deployment (FastAPI).

Every request takes the current `Runtime` (engine, filter, keys) once and keeps it, so a
reload that swaps the model never touches a request in flight: new requests go to the new
engine, the old one drains and is closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from foundryctl.serving import protocol
from foundryctl.serving.content_filter import (
    CompletionGuard,
    ContentFilterUnavailable,
    FilterPolicy,
    check,
    load_classifier,
)
from foundryctl.serving.deploydir import DeploymentDir, ServerConfig
from foundryctl.serving.metrics import Metrics
from foundryctl.serving.protocol import RequestError

log = logging.getLogger("foundryctl.serving")
DRAIN_TIMEOUT = 300.0


@dataclass
class Runtime:
    config: ServerConfig
    engine: Any  # foundryctl.serving.engine.Engine
    policy: FilterPolicy
    classifier: Any
    key_digests: tuple[bytes, ...]
    # Requests that took this runtime and have not finished: a swapped-out engine is closed
    # only when none is left (a request may not have reached the engine yet).
    inflight: int = 0

    @property
    def fingerprint(self) -> str:
        return "fp_" + hashlib.sha256(self.config.model_id.encode()).hexdigest()[:10]


def key_digests(keys: dict[str, str]) -> tuple[bytes, ...]:
    return tuple(hashlib.sha256(k.encode()).digest() for k in keys.values() if k)


def filter_parts(settings: dict[str, Any], directory: DeploymentDir) -> tuple[FilterPolicy, Any]:
    key = directory.filter_key()
    if key and settings.get("classifier") == "azure":
        # apply stores the key it read from its own environment; the server's is older
        os.environ[settings.get("azure_key_env") or "CONTENT_SAFETY_KEY"] = key
    return FilterPolicy.from_settings(settings), load_classifier(settings)


def load_runtime(config: ServerConfig, directory: DeploymentDir) -> Runtime:
    """Load the engine (slow), the filter and the keys for `config`."""
    from foundryctl.serving.engine import Engine

    policy, classifier = filter_parts(config.content_filter, directory)
    engine = Engine.load(config.model_dir, config.adapter_dir, device=config.device,
                         max_batch_size=config.max_batch_size, model_name=config.deployment)
    return Runtime(config, engine, policy, classifier, key_digests(directory.keys()))


def warm_up(engine: Any) -> None:
    """One real generation: a model that loads but cannot answer never takes traffic."""
    from foundryctl.serving.engine import SamplingParams

    engine.generate([{"role": "user", "content": "Hello"}], SamplingParams(max_tokens=2, temperature=0))


class Server:
    """The app's mutable parts: the runtime (swapped whole) and the metrics."""

    def __init__(self, directory: DeploymentDir, runtime: Runtime,
                 loader: Callable[[ServerConfig, DeploymentDir], Runtime] = load_runtime):
        self.directory = directory
        self.runtime = runtime
        self.loader = loader
        self.metrics = Metrics()
        self.reload_lock = asyncio.Lock()
        self.draining: set[asyncio.Task] = set()

    def authorize(self, request: Request, runtime: Runtime) -> None:
        supplied = request.headers.get("api-key")
        authorization = request.headers.get("authorization", "")
        if not supplied and authorization[:7].lower() == "bearer ":
            supplied = authorization[7:].strip()
        if supplied:
            digest = hashlib.sha256(supplied.encode()).digest()
            if any(hmac.compare_digest(digest, known) for known in runtime.key_digests):
                return
        raise RequestError(401, "Access denied due to a missing or invalid key: send one of the "
                           "deployment's keys as `Authorization: Bearer KEY` or `api-key: KEY` "
                           "(see `foundryctl deployments keys`).", code="invalid_api_key",
                           type="authentication_error")

    async def reload(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a new config: keys and filter at once; a new model only once it has loaded
        and answered, after which the old engine drains."""
        async with self.reload_lock:
            old = self.runtime
            config = ServerConfig.from_dict(body) if body else old.config
            if config.port != old.config.port:
                raise RequestError(400, "the port cannot change by reload; restart the server", param="port")
            try:
                policy, classifier = filter_parts(config.content_filter, self.directory)
            except ValueError as exc:
                raise RequestError(400, f"content_filter: {exc}", param="content_filter") from None
            keys = key_digests(self.directory.keys())
            swapped = not config.same_model(old.config)
            if swapped:
                log.info("loading %s for %s", config.model_id, config.deployment)
                try:
                    fresh = await asyncio.to_thread(self.loader, config, self.directory)
                    await asyncio.to_thread(warm_up, fresh.engine)
                except Exception as exc:  # the old model keeps serving
                    log.exception("reload failed")
                    raise RequestError(500, f"the new model failed to load: {exc}", code="reload_failed",
                                       type="server_error") from None
                engine = fresh.engine
            else:
                engine = old.engine
            self.runtime = Runtime(config, engine, policy, classifier, keys)
            self.directory.write_config(config)
            self.directory.write_status(model=config.model_id)
            self.metrics.set_model(config.model_id)
            if swapped:
                log.info("now serving %s; draining the previous model", config.model_id)
                task = asyncio.create_task(self._drain(old))
                self.draining.add(task)
                task.add_done_callback(self.draining.discard)
            return {"model_id": config.model_id, "swapped": swapped}

    @staticmethod
    async def _drain(old: Runtime) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            stats = old.engine.stats()
            if old.inflight == 0 and not stats.get("active") and not stats.get("queued"):
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(old.engine.close)


def create_app(directory: DeploymentDir, runtime: Runtime,
               loader: Callable[[ServerConfig, DeploymentDir], Runtime] = load_runtime) -> FastAPI:
    server = Server(directory, runtime, loader)
    server.metrics.set_model(runtime.config.model_id)
    app = FastAPI(title=f"foundryctl deployment {runtime.config.deployment}", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.server = server

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(RequestError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                                         code=str(exc.status_code)).body, status_code=exc.status_code)

    app.add_middleware(_Measure, metrics=server.metrics)

    @app.get("/health")
    async def health() -> JSONResponse:
        current = server.runtime
        return JSONResponse({"status": "ok", "deployment": current.config.deployment,
                             "model": current.config.model_id, **current.engine.stats()})

    @app.get("/metrics")
    async def metrics() -> Response:
        current = server.runtime
        server.metrics.set_engine(current.engine.stats())
        return Response(server.metrics.render(), media_type=server.metrics.content_type)

    def model_card(current: Runtime) -> dict[str, Any]:
        return {"id": current.config.deployment, "object": "model", "created": int(directory.path.stat().st_mtime),
                "owned_by": "foundryctl", "root": current.config.model_id}

    @app.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        current = server.runtime
        server.authorize(request, current)
        return JSONResponse({"object": "list", "data": [model_card(current)]})

    @app.get("/v1/models/{model_id}")
    async def model(request: Request, model_id: str) -> JSONResponse:
        current = server.runtime
        server.authorize(request, current)
        if model_id != current.config.deployment:
            raise RequestError(404, f"the model {model_id!r} does not exist; this deployment serves "
                               f"{current.config.deployment!r}", code="model_not_found", param="model")
        return JSONResponse(model_card(current))

    @app.post("/admin/reload")
    async def reload(request: Request) -> JSONResponse:
        token = request.headers.get("x-foundryctl-admin", "")
        if not hmac.compare_digest(token.encode(), directory.admin_token().encode()):
            raise RequestError(401, "admin token required", code="invalid_admin_token", type="authentication_error")
        body = await request.body()
        return JSONResponse(await server.reload(json.loads(body) if body else {}))

    async def chat_completions(request: Request) -> Response:
        current = server.runtime
        current.inflight += 1  # taken and counted in one step: a swap cannot close it under us
        release = True
        try:
            server.authorize(request, current)
            try:
                body = await request.json()
            except ValueError:
                raise RequestError(400, "the body is not JSON") from None
            parsed, messages = protocol.parse_request(body)
            response = await _complete(server, current, parsed, messages, request)
            if isinstance(response, StreamingResponse):
                release = False  # the stream releases it when it ends
            return response
        finally:
            if release:
                current.inflight -= 1

    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route("/chat/completions", chat_completions, methods=["POST"])
    # Azure OpenAI's path, so the AzureOpenAI client works with azure_deployment=NAME.
    app.add_api_route("/openai/deployments/{deployment}/chat/completions", chat_completions, methods=["POST"])
    return app


class _Measure:
    """Request count and latency per route template, measured until the last byte of the
    body is sent (a streamed answer counts whole)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route and (route.startswith("/v1/") or "chat/completions" in route):
                self.metrics.observe_request(route, status, time.perf_counter() - started)


async def _cancel_on_disconnect(http: Request, handle: Any) -> None:
    """A client that hangs up on a non-streamed request frees its batch row at once."""
    while not await http.is_disconnected():
        await asyncio.sleep(0.5)
    handle.cancel()


async def _classify(runtime: Runtime, function: Callable[..., Any], *args: Any) -> Any:
    """Run a filter step: inline for the offline rules (microseconds), in a thread for a
    network classifier so the event loop keeps serving."""
    try:
        if runtime.classifier.name == "offline":
            return function(*args)
        return await asyncio.to_thread(function, *args)
    except ContentFilterUnavailable as exc:
        raise RequestError(503, f"the content filter is unavailable: {exc}", code="content_filter_unavailable",
                           type="server_error") from None


async def _complete(server: Server, runtime: Runtime, request: protocol.ChatRequest,
                    messages: list[dict[str, str]], http: Request) -> Response:
    from foundryctl.serving.engine import Delta, EngineError, Failed, Finished, SamplingParams

    prompt_text = "\n".join(m["content"] for m in messages if m["role"] != "assistant")
    prompt_result = await _classify(runtime, check, runtime.policy, runtime.classifier, prompt_text)
    if prompt_result.filtered:
        server.metrics.filtered("prompt", prompt_result.filtered_categories)
        raise protocol.prompt_blocked(prompt_result.to_azure())

    greedy = request.top_p == 0  # only the most likely token is left: greedy decoding
    params = SamplingParams(max_tokens=request.max_completion_tokens or request.max_tokens,
                            temperature=0.0 if greedy else 1.0 if request.temperature is None else request.temperature,
                            top_p=1.0 if request.top_p is None or greedy else request.top_p,
                            stop=request.stop_list, seed=request.seed)
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    try:
        handle = runtime.engine.submit(messages, params, lambda e: loop.call_soon_threadsafe(events.put_nowait, e))
    except EngineError as exc:
        raise RequestError(400, str(exc), param="messages") from None
    guard = CompletionGuard(runtime.policy, runtime.classifier)
    started = time.perf_counter()
    ident, created, model = protocol.completion_id(), int(time.time()), runtime.config.deployment

    async def run() -> AsyncIterator[tuple[str, Any]]:
        """('text', released text) ... then ('end', (finish_reason, prompt, completion))."""
        first = True
        try:
            while True:
                event = await events.get()
                if isinstance(event, Delta):
                    if first:
                        server.metrics.first_token(time.perf_counter() - started)
                        first = False
                    step = await _classify(runtime, guard.push, event.text)
                    if step.release:
                        yield "text", step.release
                    if step.blocked is not None:
                        handle.cancel()
                        server.metrics.filtered("completion", step.blocked.filtered_categories)
                        prompt_tokens = len(runtime.engine.prompt_tokens(messages))
                        server.metrics.tokens(prompt_tokens, len(handle.token_ids))
                        yield "end", ("content_filter", prompt_tokens, len(handle.token_ids))
                        return
                elif isinstance(event, Finished):
                    step = await _classify(runtime, guard.finish)
                    if step.release:
                        yield "text", step.release
                    reason = event.finish_reason
                    if step.blocked is not None:
                        server.metrics.filtered("completion", step.blocked.filtered_categories)
                        reason = "content_filter"
                    server.metrics.tokens(event.prompt_tokens, event.completion_tokens)
                    yield "end", (reason, event.prompt_tokens, event.completion_tokens)
                    return
                elif isinstance(event, Failed):
                    raise RequestError(500, f"generation failed: {event.error}", type="server_error")
        finally:
            handle.cancel()  # the client went away or we stopped early: free the batch row

    prompt_azure = prompt_result.to_azure()
    if not request.stream:
        text: list[str] = []
        ending: tuple[str, int, int] = ("stop", 0, 0)
        watcher = asyncio.create_task(_cancel_on_disconnect(http, handle))
        try:
            async for kind, value in run():
                if kind == "text":
                    text.append(value)
                else:
                    ending = value
        finally:
            watcher.cancel()
        return JSONResponse(protocol.completion_body(
            id=ident, model=model, text="".join(text), finish_reason=ending[0], prompt_tokens=ending[1],
            completion_tokens=ending[2], prompt_filter=prompt_azure, completion_filter=guard.result.to_azure(),
            fingerprint=runtime.fingerprint))

    include_usage = bool(request.stream_options and request.stream_options.include_usage)

    def sse(body: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    async def stream() -> AsyncIterator[bytes]:
        common = dict(id=ident, model=model, created=created, fingerprint=runtime.fingerprint)
        yield sse(protocol.chunk(**common, prompt_filter_results=protocol.prompt_filter_results(prompt_azure)))
        yield sse(protocol.chunk(**common, delta={"role": "assistant", "content": ""}))
        try:
            async for kind, value in run():
                if kind == "text":
                    yield sse(protocol.chunk(**common, delta={"content": value}))
                    continue
                reason, prompt_tokens, completion_tokens = value
                yield sse(protocol.chunk(**common, delta={}, finish_reason=reason,
                                         content_filter_results=guard.result.to_azure()))
                if include_usage:
                    yield sse(protocol.chunk(**common, usage=protocol.usage(prompt_tokens, completion_tokens)))
        except RequestError as exc:  # headers are sent: report in the stream, as OpenAI does
            yield sse(exc.body)
        finally:
            handle.cancel()  # also when the client disconnects mid-stream
            runtime.inflight -= 1
        yield b"data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
