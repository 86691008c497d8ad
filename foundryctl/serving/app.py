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
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, get_type_hints

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ConfigDict, ValidationError, create_model
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
from foundryctl.serving.metrics import CLIENT_CLOSED, Metrics
from foundryctl.serving.protocol import RequestError

log = logging.getLogger("foundryctl.serving")
DRAIN_TIMEOUT = 300.0
# The largest request body (bytes): a context window of text is far below it, and a body that
# big is parsed and tokenised before it is refused for its length.
MAX_BODY_BYTES = 4 * 1024 * 1024
JSON_TYPES = ("application/json",)
INLINE_FILTER_CHARS = 16_384  # longer texts are classified in a thread
HUNG_UP = "foundryctl.hung_up"  # set in the ASGI scope when the client left before its answer ended


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON (no NaN or Infinity); a body nested too deep is a bad request, not a crash."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise RequestError(400, "the body is not JSON (or is nested too deeply)") from None


def check_content_type(request: Request) -> None:
    kind = request.headers.get("content-type")
    if kind is not None and kind.split(";")[0].strip().lower() not in JSON_TYPES:
        raise RequestError(415, f"the body must be application/json, not {kind!r}", code="unsupported_media_type")


# A reload body's fields, strictly typed: ServerConfig itself checks nothing, and a wrong type
# would only fail deep in the filter or the model loader (a 500).
_CONFIG_SHAPE = create_model(
    "ServerConfigShape", __config__=ConfigDict(strict=True, extra="ignore"),
    **{f.name: (hint, ... if f.default is MISSING and f.default_factory is MISSING else None)
       for f, hint in ((f, get_type_hints(ServerConfig)[f.name]) for f in fields(ServerConfig))})


def check_server_config(body: dict[str, Any]) -> None:
    """A 400 naming the field when `body` is not a server config."""
    try:
        _CONFIG_SHAPE.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise RequestError(400, f"not a server config: {where}: {first['msg']}",
                           param=str(first["loc"][0]) if first["loc"] else None) from None


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
    from foundryctl.serving.classifier_engine import ClassifierEngine, classification_labels
    from foundryctl.serving.engine import Engine

    policy, classifier = filter_parts(config.content_filter, directory)
    if classification_labels(config.adapter_dir, config.model_dir) is not None:
        engine: Any = ClassifierEngine.load(config.model_dir, config.adapter_dir, device=config.device,
                                            model_name=config.deployment)
    else:
        engine = Engine.load(config.model_dir, config.adapter_dir, device=config.device,
                             max_batch_size=config.max_batch_size, model_name=config.deployment)
    return Runtime(config, engine, policy, classifier, key_digests(directory.keys()))


def warm_up(engine: Any) -> None:
    """One real generation: a model that loads but cannot answer never takes traffic."""
    from foundryctl.serving.engine import SamplingParams

    if is_classifier(engine):
        engine.classify(["Hello"])
        return
    engine.generate([{"role": "user", "content": "Hello"}], SamplingParams(max_tokens=2, temperature=0))


def is_classifier(engine: Any) -> bool:
    return getattr(engine, "task", None) == "text_classification"


def classify_inputs(body: Any) -> list[str]:
    """The texts of a classify request: `{"input": "..." | ["...", ...]}`."""
    from foundryctl.serving.classifier_engine import MAX_INPUTS

    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object with `input`: a string or a list of strings")
    unknown = sorted(set(body) - {"input", "model"})
    if unknown:
        raise RequestError(400, f"unrecognized request argument(s): {', '.join(unknown)}", param=unknown[0])
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(400, "`input` must be a non-empty string or a non-empty list of strings",
                           param="input")
    if len(texts) > MAX_INPUTS:
        raise RequestError(400, f"`input` has {len(texts)} texts; at most {MAX_INPUTS} per request", param="input")
    blank = next((i for i, t in enumerate(texts) if not t.strip()), None)
    if blank is not None:
        raise RequestError(400, f"`input[{blank}]` is empty" if isinstance(value, list) else "`input` is empty",
                           param="input")
    return texts


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
            except (TypeError, ValueError, AttributeError) as exc:  # a setting of the wrong shape
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

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(RequestError(400, f"{request.method} {request.url.path}: {exc.errors()[0]['msg']}").body,
                            status_code=400)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(RequestError(500, "the server failed to answer this request; see the server log",
                                         type="server_error").body, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(RequestError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                                         code=str(exc.status_code)).body, status_code=exc.status_code)

    app.add_middleware(_LimitBody, max_bytes=MAX_BODY_BYTES)
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

    def azure_checks(request: Request, current: Runtime) -> None:
        """Azure's route answers as Azure does: it needs an api-version and a deployment that exists."""
        if not request.url.path.startswith("/openai/"):
            return
        if not request.query_params.get("api-version"):
            raise RequestError(400, "Missing required query parameter: api-version (e.g. ?api-version=2024-10-21)",
                               code="missing_api_version", param="api-version")
        deployment = request.path_params.get("deployment")
        if deployment is not None and deployment != current.config.deployment:
            raise RequestError(404, f"The API deployment {deployment!r} does not exist; this endpoint serves "
                               f"{current.config.deployment!r}", code="DeploymentNotFound")

    async def models(request: Request) -> JSONResponse:
        current = server.runtime
        server.authorize(request, current)
        azure_checks(request, current)
        return JSONResponse({"object": "list", "data": [model_card(current)]})

    async def model(request: Request, model_id: str) -> JSONResponse:
        current = server.runtime
        server.authorize(request, current)
        azure_checks(request, current)
        if model_id != current.config.deployment:
            raise RequestError(404, f"the model {model_id!r} does not exist; this deployment serves "
                               f"{current.config.deployment!r}", code="model_not_found", param="model")
        return JSONResponse(model_card(current))

    for prefix in ("/v1", "/openai"):
        app.add_api_route(f"{prefix}/models", models, methods=["GET"])
        app.add_api_route(f"{prefix}/models/{{model_id}}", model, methods=["GET"])

    @app.post("/admin/reload")
    async def reload(request: Request) -> JSONResponse:
        token = request.headers.get("x-foundryctl-admin", "")
        if not hmac.compare_digest(token.encode(), directory.admin_token().encode()):
            raise RequestError(401, "admin token required", code="invalid_admin_token", type="authentication_error")
        check_content_type(request)
        raw = await request.body()
        body = parse_json(raw) if raw else {}
        if not isinstance(body, dict):
            raise RequestError(400, "the body must be a JSON object: a server config")
        if body:
            check_server_config(body)
        return JSONResponse(await server.reload(body))

    async def chat_completions(request: Request) -> Response:
        current = server.runtime
        current.inflight += 1  # taken and counted in one step: a swap cannot close it under us
        release = True
        try:
            server.authorize(request, current)
            azure_checks(request, current)
            if is_classifier(current.engine):
                raise RequestError(400, f"deployment {current.config.deployment!r} serves a text-classification "
                                   "model, which does not chat: POST {\"input\": ...} to /v1/classify",
                                   code="unsupported_task")
            check_content_type(request)
            body = parse_json(await request.body())
            try:
                parsed, messages = protocol.parse_request(body)
            except RecursionError:
                raise RequestError(400, "the body is nested too deeply") from None
            azure = request.url.path.startswith("/openai/")
            response = await _complete(server, current, parsed, messages, request, azure=azure)
            if isinstance(response, StreamingResponse):
                release = False  # the stream releases it when it ends
            return response
        finally:
            if release:
                current.inflight -= 1

    async def classify(request: Request) -> JSONResponse:
        current = server.runtime
        current.inflight += 1
        try:
            server.authorize(request, current)
            if not is_classifier(current.engine):
                raise RequestError(400, f"deployment {current.config.deployment!r} serves a chat model: "
                                   "classify needs a FineTuneJob with `task: text_classification`; "
                                   "use /v1/chat/completions", code="unsupported_task")
            check_content_type(request)
            texts = classify_inputs(parse_json(await request.body()))
            results = await asyncio.to_thread(current.engine.classify, texts)
            return JSONResponse({"object": "list", "model": current.config.deployment,
                                 "data": [{"index": i, "object": "classification", **r}
                                          for i, r in enumerate(results)]})
        finally:
            current.inflight -= 1

    app.add_api_route("/v1/classify", classify, methods=["POST"])
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
        complete = hung_up = False

        async def watch(message: dict) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        async def listen() -> dict:
            nonlocal hung_up
            message = await receive()
            if message["type"] == "http.disconnect" and not complete:
                hung_up = True
            return message

        try:
            await self.app(scope, listen, watch)
        except asyncio.CancelledError:  # the server cancels a request whose client left
            hung_up = True
            raise
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route and (route.startswith(("/v1/", "/openai/")) or "chat/completions" in route):
                # a client that hung up before the answer ended is nginx's 499, not a server error
                code = CLIENT_CLOSED if hung_up or scope.get(HUNG_UP) else status
                self.metrics.observe_request(route, code, time.perf_counter() - started)


class _LimitBody:
    """Refuse a body over `max_bytes` with 413: at once when Content-Length says so, else as
    soon as that many bytes have arrived."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = RequestError(413, f"the request body is larger than {self.max_bytes} bytes",
                                 code="request_too_large")
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse(too_large.body, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large  # answered by the app's RequestError handler
            return message

        await self.app(scope, counted, send)


async def _cancel_on_disconnect(http: Request, choices: list[Any]) -> None:
    """A client that hangs up on a non-streamed request frees its batch rows at once."""
    while not await http.is_disconnected():
        await asyncio.sleep(0.5)
    http.scope[HUNG_UP] = True
    for each in choices:
        each.handle.cancel()


async def _classify(runtime: Runtime, function: Callable[..., Any], *args: Any) -> Any:
    """Run a filter step: inline for the offline rules on a short text (microseconds), in a
    thread for a long one or a network classifier, so the event loop keeps serving."""
    size = sum(len(arg) for arg in args if isinstance(arg, str))
    try:
        if runtime.classifier.name == "offline" and size < INLINE_FILTER_CHARS:
            return function(*args)
        return await asyncio.to_thread(function, *args)
    except ContentFilterUnavailable as exc:
        raise RequestError(503, f"the content filter is unavailable: {exc}", code="content_filter_unavailable",
                           type="server_error") from None


def _logprobs(engine: Any, handle: Any, token_ids: list[int], upto: int, since: int) -> list[dict[str, Any]]:
    """OpenAI's `logprobs.content` entries of the tokens `since` .. `upto`."""
    tokenizer = engine.tokenizer
    entries = []
    for (logprob, top), token in zip(handle.logprobs[since:upto], token_ids[since:upto]):
        entries.append(protocol.logprob_entry(tokenizer.decode([token]), logprob,
                                              [(tokenizer.decode([t]), v) for t, v in top]))
    return entries


@dataclass
class _Choice:
    index: int
    handle: Any
    guard: CompletionGuard
    text: list[str]
    sent_logprobs: int = 0  # tokens whose logprobs have been sent (streaming)
    ending: tuple[str, int, int] | None = None  # finish_reason, prompt tokens, completion tokens


async def _complete(server: Server, runtime: Runtime, request: protocol.ChatRequest,
                    messages: list[dict[str, str]], http: Request, *, azure: bool = False) -> Response:
    from foundryctl.serving.engine import Delta, EngineError, Failed, Finished, SamplingParams

    prompt_text = "\n".join(m["content"] for m in messages if m["role"] != "assistant")
    prompt_result = await _classify(runtime, check, runtime.policy.for_source("prompt"), runtime.classifier,
                                    prompt_text)
    if prompt_result.filtered:
        server.metrics.filtered("prompt", prompt_result.filtered_categories)
        raise protocol.prompt_blocked(prompt_result.to_azure())

    greedy = request.top_p == 0  # only the most likely token is left: greedy decoding
    base = SamplingParams(max_tokens=request.max_completion_tokens or request.max_tokens,
                          temperature=0.0 if greedy else 1.0 if request.temperature is None else request.temperature,
                          top_p=1.0 if request.top_p is None or greedy else request.top_p,
                          stop=request.stop_list, seed=request.seed, logit_bias=request.token_bias,
                          presence_penalty=request.presence_penalty or 0.0,
                          frequency_penalty=request.frequency_penalty or 0.0,
                          logprobs=(request.top_logprobs or 0) if request.logprobs else None)
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    started = time.perf_counter()
    choices: list[_Choice] = []

    def cancel_all() -> None:
        for each in choices:
            each.handle.cancel()

    try:
        for index in range(request.choices):
            # choice i of a seeded request draws from seed + i: the n answers differ, and repeat
            seed = None if base.seed is None else (base.seed + index + 2**63) % 2**64 - 2**63
            params = replace(base, seed=seed)
            # tokenising and the chat template take a thread: a huge prompt never stalls the loop
            handle = await asyncio.to_thread(
                runtime.engine.submit, messages, params,
                lambda e, i=index: loop.call_soon_threadsafe(events.put_nowait, (i, e)))
            guard = CompletionGuard(runtime.policy.for_source("completion"), runtime.classifier)
            choices.append(_Choice(index, handle, guard, []))
    except EngineError as exc:
        cancel_all()
        raise RequestError(400, str(exc), param=exc.param) from None
    except BaseException:
        cancel_all()
        raise
    ident, created, model = protocol.completion_id(), int(time.time()), runtime.config.deployment
    prompt_tokens = 0
    first = True
    last_token_at: dict[int, tuple[float, int]] = {}

    async def run() -> AsyncIterator[tuple[str, _Choice, Any]]:
        """('text', choice, (text, tokens)) ... and one ('end', choice, None) per choice."""
        nonlocal first, prompt_tokens
        left = len(choices)
        try:
            while left:
                index, event = await events.get()
                each = choices[index]
                if each.ending is not None:
                    continue
                if isinstance(event, Delta):
                    now = time.perf_counter()
                    if first:
                        server.metrics.first_token(now - started)
                        first = False
                    if index in last_token_at and event.tokens > last_token_at[index][1]:
                        at, count = last_token_at[index]
                        server.metrics.inter_token(now - at, event.tokens - count)
                    last_token_at[index] = (now, event.tokens)
                    step = await _classify(runtime, each.guard.push, event.text)
                    if step.release:
                        yield "text", each, (step.release, event.tokens)
                    if step.blocked is not None:
                        each.handle.cancel()
                        server.metrics.filtered("completion", step.blocked.filtered_categories)
                        prompt_tokens = len(await asyncio.to_thread(runtime.engine.prompt_tokens, messages))
                        each.ending = ("content_filter", prompt_tokens, len(each.handle.token_ids))
                        left -= 1
                        yield "end", each, None
                elif isinstance(event, Finished):
                    step = await _classify(runtime, each.guard.finish)
                    if step.release:
                        yield "text", each, (step.release, event.completion_tokens)
                    reason = event.finish_reason
                    if step.blocked is not None:
                        server.metrics.filtered("completion", step.blocked.filtered_categories)
                        reason = "content_filter"
                    prompt_tokens = event.prompt_tokens
                    each.ending = (reason, event.prompt_tokens, event.completion_tokens)
                    left -= 1
                    yield "end", each, None
                elif isinstance(event, Failed):
                    raise RequestError(500, f"generation failed: {event.error}", type="server_error")
        finally:
            cancel_all()  # the client went away or we stopped early: free the batch rows

    def account() -> tuple[int, int]:
        completion = sum(c.ending[2] for c in choices if c.ending)
        queued = [c.handle.admitted_at - c.handle.submitted_at for c in choices if c.handle.admitted_at]
        server.metrics.finished(prompt_tokens, completion, max(queued, default=None))
        return prompt_tokens, completion

    def logprobs_of(each: _Choice, upto: int) -> list[dict[str, Any]] | None:
        if base.logprobs is None:
            return None
        entries = _logprobs(runtime.engine, each.handle, each.handle.token_ids, upto, each.sent_logprobs)
        each.sent_logprobs = max(each.sent_logprobs, min(upto, len(each.handle.logprobs)))
        return entries

    prompt_azure = prompt_result.to_azure()
    if not request.stream:
        watcher = asyncio.create_task(_cancel_on_disconnect(http, choices))
        try:
            async for kind, each, value in run():
                if kind == "text":
                    each.text.append(value[0])
        finally:
            watcher.cancel()
        used_prompt, used_completion = account()
        return JSONResponse(protocol.completion_body(
            id=ident, model=model, prompt_tokens=used_prompt, completion_tokens=used_completion,
            prompt_filter=prompt_azure, fingerprint=runtime.fingerprint,
            choices=[protocol.choice(index=c.index, text="".join(c.text), finish_reason=c.ending[0],
                                     completion_filter=c.guard.result.to_azure(),
                                     logprobs=logprobs_of(c, len(c.handle.token_ids)))
                     for c in choices if c.ending]))

    include_usage = bool(request.stream_options and request.stream_options.include_usage)

    def sse(body: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    async def stream() -> AsyncIterator[bytes]:
        common = dict(id=ident, model=model, created=created, fingerprint=runtime.fingerprint)
        prompt_filter = protocol.prompt_filter_results(prompt_azure)
        if azure:  # Azure's first chunk has no choices; OpenAI's clients expect choices[0] in each
            yield sse(protocol.chunk(**common, prompt_filter_results=prompt_filter))
        for each in choices:
            yield sse(protocol.chunk(**common, delta={"role": "assistant", "content": ""}, index=each.index,
                                     **({} if azure or each.index else {"prompt_filter_results": prompt_filter})))
        ended = False
        try:
            async for kind, each, value in run():
                if kind == "text":
                    yield sse(protocol.chunk(**common, delta={"content": value[0]}, index=each.index,
                                             logprobs=logprobs_of(each, value[1])))
                    continue
                rest = logprobs_of(each, len(each.handle.token_ids))
                yield sse(protocol.chunk(**common, delta={}, finish_reason=each.ending[0], index=each.index,
                                         logprobs=rest if rest else None if base.logprobs is None else [],
                                         content_filter_results=each.guard.result.to_azure()))
            used_prompt, used_completion = account()
            if include_usage:
                yield sse(protocol.chunk(**common, usage=protocol.usage(used_prompt, used_completion)))
            ended = True
        except RequestError as exc:  # headers are sent: report in the stream, as OpenAI does
            ended = True
            yield sse(exc.body)
        finally:
            if not ended:  # the generator was closed: the client hung up mid-stream
                http.scope[HUNG_UP] = True
            cancel_all()  # also when the client disconnects mid-stream
            runtime.inflight -= 1
        yield b"data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
