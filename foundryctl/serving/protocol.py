"""The OpenAI chat-completions wire format: request parsing and response bodies.

Requests are parsed leniently where OpenAI's clients send fields that do not change the answer
(`user`, `metadata`) and strictly where they do: every sampling parameter is either honoured,
in OpenAI's range, or refused with a 400 (tools, images, JSON mode). `null` means "omitted" for
every optional field, as in OpenAI's API; numbers and booleans are strictly typed (`"10"` is
not a `max_tokens`).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

ROLES = ("system", "developer", "user", "assistant")


class RequestError(Exception):
    """A request the endpoint answers with an OpenAI-style error."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type: str = "invalid_request_error", extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code,
                               **(extra or {})}}


INT64 = 2**63
# OpenAI's ranges. A float field accepts JSON integers too (strict: never a string).
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]
MAX_N = 16
MAX_TOP_LOGPROBS = 20


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    temperature: Float | None = Field(None, ge=0, le=2)
    top_p: Float | None = Field(None, ge=0, le=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: StrictInt | None = Field(None, ge=-INT64, lt=INT64)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(None, ge=1, le=MAX_N)
    presence_penalty: Float | None = Field(None, ge=-2, le=2)
    frequency_penalty: Float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, Float] | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        if value == "" or (isinstance(value, list) and "" in value):
            raise ValueError("stop sequences must not be empty")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, bias in (value or {}).items():
            if not key.isascii() or not key.isdigit() or int(key) >= INT64:
                raise ValueError(f"keys must be token ids (as strings), not {key!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"the bias of token {key} must be between -100 and 100, not {bias}")
        return value

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def choices(self) -> int:
        return self.n or 1

    @property
    def token_bias(self) -> dict[int, float]:
        return {int(k): v for k, v in (self.logit_bias or {}).items()}


def parse_request(body: Any) -> tuple[ChatRequest, list[dict[str, str]]]:
    """The request and its messages as plain {role, content} strings."""
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        param = str(first["loc"][0]) if first["loc"] else None
        raise RequestError(400, f"{where or 'body'}: {first['msg']}", param=param) from None
    if request.stream_options is not None and not request.stream:
        raise RequestError(400, "stream_options is only allowed when stream is true", param="stream_options")
    if request.tool_choice is not None and not request.tools:
        raise RequestError(400, "tool_choice is only allowed when tools are specified", param="tool_choice")
    if request.top_logprobs is not None and not request.logprobs:
        raise RequestError(400, "logprobs must be true when top_logprobs is set", param="top_logprobs")
    if request.tools or request.functions:
        raise RequestError(400, "tools and functions are not supported by this deployment", param="tools")
    if request.response_format and request.response_format.get("type", "text") != "text":
        raise RequestError(400, "only response_format {\"type\": \"text\"} is supported by this deployment",
                           param="response_format")
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


def choice(*, index: int, text: str, finish_reason: str, completion_filter: dict[str, Any],
           logprobs: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason,
            "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
            "content_filter_results": completion_filter}


def completion_body(*, id: str, model: str, choices: list[dict[str, Any]], prompt_tokens: int,
                    completion_tokens: int, prompt_filter: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    return {
        "id": id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "system_fingerprint": fingerprint,
        "prompt_filter_results": prompt_filter_results(prompt_filter),
        "choices": choices,
        "usage": usage(prompt_tokens, completion_tokens),
    }


def logprob_entry(token: str, logprob: float, top: list[tuple[str, float]]) -> dict[str, Any]:
    """One token of OpenAI's `logprobs.content`."""
    def one(text: str, value: float) -> dict[str, Any]:
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8", "replace"))}

    return {**one(token, logprob), "top_logprobs": [one(t, v) for t, v in top]}


def chunk(*, id: str, model: str, created: int, fingerprint: str, delta: dict[str, Any] | None = None,
          finish_reason: str | None = None, index: int = 0, logprobs: list[dict[str, Any]] | None = None,
          **extra: Any) -> dict[str, Any]:
    """One `chat.completion.chunk`; `delta=None` makes a chunk with no choices (Azure's
    prompt-filter chunk, the usage chunk)."""
    body: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                            "system_fingerprint": fingerprint}
    body["choices"] = [] if delta is None else [
        {"index": index, "delta": delta, "finish_reason": finish_reason,
         "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
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
