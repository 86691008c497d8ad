"""The OpenAI chat-completions wire format: request parsing and response bodies.

Requests are parsed leniently where OpenAI's clients send fields we do not act on (`user`,
`logprobs: false`, penalties at 0) and strictly where ignoring a field would change the answer
(`n` > 1, tools, images).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ROLES = ("system", "developer", "user", "assistant")


class RequestError(Exception):
    """A request the endpoint answers with an OpenAI-style error."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type: str = "invalid_request_error", extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code,
                               **(extra or {})}}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


def parse_request(body: Any) -> tuple[ChatRequest, list[dict[str, str]]]:
    """The request and its messages as plain {role, content} strings."""
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RequestError(400, f"{where}: {first['msg']}", param=where or None) from None
    if request.n != 1:
        raise RequestError(400, "only n=1 is supported", param="n")
    if request.tools or request.functions:
        raise RequestError(400, "tools and functions are not supported by this deployment", param="tools")
    if request.response_format and request.response_format.get("type", "text") != "text":
        raise RequestError(400, "only response_format {\"type\": \"text\"} is supported by this deployment",
                           param="response_format")
    if request.logprobs or request.top_logprobs:
        raise RequestError(400, "logprobs are not supported by this deployment", param="logprobs")
    messages = []
    for index, message in enumerate(request.messages):
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(400, f"messages[{index}].role must be one of {', '.join(ROLES)}",
                               param=f"messages[{index}].role")
        messages.append({"role": "system" if role == "developer" else role,
                         "content": _text(message.get("content"), index)})
    return request, messages


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(400, f"messages[{index}].content: only text parts are supported",
                                   param=f"messages[{index}].content")
            parts.append(part["text"])
        return "".join(parts)
    raise RequestError(400, f"messages[{index}].content must be a string or a list of text parts",
                       param=f"messages[{index}].content")


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def prompt_filter_results(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"prompt_index": 0, "content_filter_results": result}]


def completion_body(*, id: str, model: str, text: str, finish_reason: str, prompt_tokens: int,
                    completion_tokens: int, prompt_filter: dict[str, Any], completion_filter: dict[str, Any],
                    fingerprint: str) -> dict[str, Any]:
    return {
        "id": id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "system_fingerprint": fingerprint,
        "prompt_filter_results": prompt_filter_results(prompt_filter),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason, "logprobs": None,
                     "content_filter_results": completion_filter}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chunk(*, id: str, model: str, created: int, fingerprint: str, delta: dict[str, Any] | None = None,
          finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """One `chat.completion.chunk`; `delta=None` makes a chunk with no choices (Azure's
    prompt-filter chunk, the usage chunk)."""
    body: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                            "system_fingerprint": fingerprint}
    body["choices"] = [] if delta is None else [
        {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None,
         **({"content_filter_results": extra.pop("content_filter_results")}
            if "content_filter_results" in extra else {})}]
    body.update(extra)
    return body


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def prompt_blocked(result: dict[str, Any]) -> RequestError:
    """Azure's answer to a prompt the content filter blocks."""
    return RequestError(
        400, "The response was filtered due to the prompt triggering the content management policy "
        "of this deployment. Please modify your prompt and retry.",
        code="content_filter", param="prompt", type="invalid_request_error",
        extra={"status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                             "content_filter_result": result}})
