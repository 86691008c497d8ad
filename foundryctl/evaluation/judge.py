"""An LLM judge: each answer scored by a model behind any OpenAI-compatible endpoint (a Deployment
of this manifest, Azure OpenAI, any `/v1` API), through the official `openai` client.

The prompt lives in the manifest with its `prompt_version`, both part of the evaluation's
identity, so a changed prompt plans a re-run. An external endpoint's key is read from the
environment variable the manifest names; a Deployment's from the backend (the handler resolves
it, `with_judge_endpoints`); either at run time, and never into results, messages or reprs.
A reply the judge's scale cannot be read from scores None (counted apart, never 0)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from foundryctl.errors import BackendError

if TYPE_CHECKING:
    from foundryctl.evaluation.metrics import Example, JudgeConfig

_INTEGER = re.compile(r"(?<![\d.])-?\d+(?![\d.])")
_VERDICT = re.compile(r"\b(PASS|FAIL)\b", re.IGNORECASE)
SYSTEM = "You grade answers. Reply with the grade only."


def parse_score(reply: str, scale: tuple[int, int] | str) -> float | None:
    """The grade in a judge's reply: the first integer inside the scale, or PASS (1) / FAIL (0)."""
    if scale == "pass_fail":
        verdict = _VERDICT.search(reply or "")
        return None if verdict is None else float(verdict.group(1).upper() == "PASS")
    low, high = scale  # type: ignore[misc]
    for match in _INTEGER.finditer(reply or ""):
        value = int(match.group())
        if low <= value <= high:
            return float(value)
    return None


def judge_scores(config: JudgeConfig, examples: Sequence[Example]) -> list[float | None]:
    """Each example's grade (None where the reply carries none)."""
    import openai

    if config.endpoint is None:
        raise BackendError("JudgeNotResolved", f"the judge Deployment {config.deployment!r} was not resolved to "
                           "its endpoint", hint="run the evaluation through foundryctl apply")
    key = config._key or (os.environ.get(config.key_env) if config.key_env else None)
    if config.key_env and not key:
        raise BackendError("JudgeKeyMissing", f"the judge's key variable {config.key_env} is not set",
                           hint=f"export {config.key_env}=... before apply (the manifest names the variable, "
                                "never the key)")
    client = openai.OpenAI(base_url=config.endpoint.rstrip("/"), api_key=key or "none", timeout=config.timeout,
                           max_retries=3, default_headers={"api-key": key} if key else None)
    scale_text = "PASS or FAIL" if config.scale == "pass_fail" else f"an integer from {config.scale[0]} to {config.scale[1]}"

    def one(example: Example) -> float | None:
        prompt = example.prompt[-1]["content"] if example.prompt else ""
        content = config.prompt.format(prompt=prompt, reference=example.reference or example.label or "",
                                       prediction=example.prediction)
        try:
            response = client.chat.completions.create(
                model=config.model, temperature=0, max_tokens=16,
                messages=[{"role": "system", "content": f"{SYSTEM} The grade is {scale_text}."},
                          {"role": "user", "content": content}])
        except openai.APIStatusError as exc:
            raise BackendError("JudgeFailed", f"the judge at {config.endpoint} answered {exc.status_code} for "
                               f"example {example.index + 1}") from None
        except openai.APIError as exc:
            raise BackendError("JudgeFailed", f"the judge at {config.endpoint} could not be reached: "
                               f"{type(exc).__name__}") from None
        return parse_score(response.choices[0].message.content or "", config.scale)

    try:
        with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
            return list(pool.map(one, examples))
    finally:
        client.close()
