"""How an evaluation gets a model's answers: in-process through the serving engine (every
prompt submitted at once, decoded in shared batches), or from an endpoint over HTTP the way
a client calls it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from foundryctl.evaluation.examples import Case

Report = Callable[[int, int], None]  # (done, total)
CLASSIFY_BATCH = 32


@dataclass(frozen=True)
class Prediction:
    text: str  # the answer, or the predicted label
    completion_tokens: int = 0
    finish_reason: str = "stop"
    reference_nll: float | None = None
    reference_tokens: int | None = None


@dataclass(frozen=True)
class GenerationSettings:
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0


class PredictionError(RuntimeError):
    """A model or endpoint that could not answer (what it said, in the message)."""


class Predictor(Protocol):
    def predict(self, cases: Sequence[Case], settings: GenerationSettings, report: Report) -> list[Prediction]: ...

    def close(self) -> None: ...


class EnginePredictor:
    """A chat model loaded in this process. `sequential` waits for each answer before the next
    prompt (the benchmark's comparison); otherwise the engine batches them all."""

    def __init__(self, engine: Any, *, sequential: bool = False, score_references: bool = False):
        self.engine, self.sequential, self.score_references = engine, sequential, score_references

    @classmethod
    def load(cls, model_dir: str, adapter_dir: str | None, *, device: str = "auto", max_batch_size: int = 16,
             score_references: bool = False) -> EnginePredictor:
        from foundryctl.serving.engine import Engine

        return cls(Engine.load(model_dir, adapter_dir, device=device, max_batch_size=max_batch_size),
                   score_references=score_references)

    def predict(self, cases: Sequence[Case], settings: GenerationSettings, report: Report) -> list[Prediction]:
        import queue

        from foundryctl.serving.engine import Delta, Finished, SamplingParams

        params = SamplingParams(max_tokens=settings.max_tokens, temperature=settings.temperature,
                                seed=settings.seed if settings.temperature > 0 else None)
        texts: dict[int, list[str]] = {i: [] for i in range(len(cases))}
        finished: dict[int, Any] = {}
        events: queue.SimpleQueue = queue.SimpleQueue()
        handles = []

        def submit(i: int) -> None:
            try:
                handles.append(self.engine.submit(cases[i].prompt, params, lambda e, i=i: events.put((i, e))))
            except ValueError as exc:  # EngineError: a prompt too long for the model, a template error
                raise PredictionError(f"example {cases[i].index + 1}: {exc}") from None

        try:
            pending = list(range(len(cases)))
            if not self.sequential:
                for i in pending:
                    submit(i)
            elif pending:
                submit(pending.pop(0))
            while len(finished) < len(cases):
                i, event = events.get()
                if isinstance(event, Delta):
                    texts[i].append(event.text)
                    continue
                if not isinstance(event, Finished):
                    raise PredictionError(f"example {cases[i].index + 1}: generation failed: {event.error}")
                finished[i] = event
                report(len(finished), len(cases))
                if self.sequential and len(finished) < len(cases):
                    submit(len(finished))
        finally:
            for handle in handles:
                handle.cancel()
        scores = self._reference_scores(cases) if self.score_references else [(None, None)] * len(cases)
        return [Prediction("".join(texts[i]), finished[i].completion_tokens, finished[i].finish_reason, *scores[i])
                for i in range(len(cases))]

    def _reference_scores(self, cases: Sequence[Case]) -> list[tuple[float | None, int | None]]:
        """The reference answer's negative log-likelihood (nats) and token count under the model,
        given the prompt: teacher forcing, one forward pass per example."""
        import torch

        model, tokenizer = self.engine.model, self.engine.tokenizer
        out: list[tuple[float | None, int | None]] = []
        for case in cases:
            if case.reference is None:
                out.append((None, None))
                continue
            prompt = self.engine.prompt_tokens(case.prompt)
            answer = tokenizer(case.reference, add_special_tokens=False)["input_ids"]
            ids = (prompt + answer)[: self.engine.context_length]
            scored = len(ids) - len(prompt)
            if scored <= 0:
                out.append((None, None))
                continue
            tensor = torch.tensor([ids], device=self.engine.device)
            with torch.no_grad():
                logits = model(input_ids=tensor).logits[0, len(prompt) - 1:-1].float()
            nll = torch.nn.functional.cross_entropy(logits, tensor[0, len(prompt):], reduction="sum").item()
            out.append((nll if math.isfinite(nll) else None, scored))
        return out

    def close(self) -> None:
        self.engine.close()


class ClassifierPredictor:
    """A text-classification model loaded in this process (the serving ClassifierEngine)."""

    def __init__(self, engine: Any):
        self.engine = engine

    @classmethod
    def load(cls, model_dir: str, adapter_dir: str | None, *, device: str = "auto",
             labels: list[str] | None = None) -> ClassifierPredictor:
        from foundryctl.serving.classifier_engine import ClassifierEngine

        return cls(ClassifierEngine.load(model_dir, adapter_dir, device=device, labels=labels))

    def predict(self, cases: Sequence[Case], settings: GenerationSettings, report: Report) -> list[Prediction]:
        out: list[Prediction] = []
        for start in range(0, len(cases), CLASSIFY_BATCH):
            chunk = cases[start:start + CLASSIFY_BATCH]
            out.extend(Prediction(r["label"]) for r in self.engine.classify([c.text or "" for c in chunk]))
            report(len(out), len(cases))
        return out

    def close(self) -> None:
        self.engine.close()


class EndpointPredictor:
    """An OpenAI-compatible chat endpoint (a Deployment's: ours on 127.0.0.1, or Azure's serverless
    endpoint), called the way a client calls it (`POST {endpoint}/chat/completions`, the key as a
    bearer token); classification through our endpoint's /v1/classify route. Requests run a few
    at a time; 429 and 5xx answers are retried with backoff."""

    RETRIES = 4

    def __init__(self, base_url: str, key: str, *, task: str = "chat_completion", concurrency: int = 8,
                 timeout: float = 300.0, model: str | None = None):
        import requests
        from urllib.parse import urlsplit

        self.base_url, self.task, self.concurrency, self.model = base_url.rstrip("/"), task, concurrency, model
        self.key = key  # a judge Deployment's key goes on to the judge's client
        self.timeout = timeout
        self.session = requests.Session()
        # Our own servers on 127.0.0.1 bypass any proxy; an Azure endpoint goes the usual way.
        self.session.trust_env = urlsplit(self.base_url).hostname not in ("127.0.0.1", "localhost", "::1")
        self.session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})

    def predict(self, cases: Sequence[Case], settings: GenerationSettings, report: Report) -> list[Prediction]:
        if self.task == "text_classification":
            return self._classify(cases, report)
        done = 0

        def one(case: Case) -> Prediction:
            nonlocal done
            body: dict[str, Any] = {"messages": case.prompt, "max_tokens": settings.max_tokens,
                                    "temperature": settings.temperature, "seed": settings.seed}
            if self.model:
                body["model"] = self.model
            answer = self._post("/chat/completions", body, f"example {case.index + 1}")
            try:
                choice = answer["choices"][0]
                usage = answer.get("usage") or {}
                prediction = Prediction(choice["message"].get("content") or "", int(usage.get("completion_tokens") or 0),
                                        choice.get("finish_reason") or "stop")
            except (KeyError, IndexError, TypeError, ValueError):
                raise PredictionError(f"example {case.index + 1}: the endpoint's answer is not a chat "
                                      "completion") from None
            done += 1
            report(done, len(cases))
            return prediction

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, cases))

    def _classify(self, cases: Sequence[Case], report: Report) -> list[Prediction]:
        out: list[Prediction] = []
        for start in range(0, len(cases), CLASSIFY_BATCH):
            chunk = cases[start:start + CLASSIFY_BATCH]
            body = self._post("/classify", {"input": [c.text or "" for c in chunk]}, "classify")
            rows = sorted(body.get("data") or [], key=lambda r: r.get("index", 0))
            if len(rows) != len(chunk):
                raise PredictionError(f"the classify route returned {len(rows)} results for {len(chunk)} texts")
            out.extend(Prediction(str(r.get("label"))) for r in rows)
            report(len(out), len(cases))
        return out

    def _post(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        import time

        import requests

        url = self.base_url + path
        for attempt in range(self.RETRIES + 1):
            try:
                response = self.session.post(url, data=json.dumps(body), timeout=self.timeout)
            except requests.RequestException as exc:
                if attempt == self.RETRIES:
                    raise PredictionError(f"{what}: cannot reach {url}: {type(exc).__name__}") from None
            else:
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise PredictionError(f"{what}: {url} answered with no JSON") from None
                if response.status_code not in (408, 429) and response.status_code < 500 or attempt == self.RETRIES:
                    raise PredictionError(f"{what}: the endpoint answered {response.status_code}: "
                                          f"{_error_message(response)}")
            time.sleep(min(8.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.session.close()

    def __repr__(self) -> str:  # never the key
        return f"EndpointPredictor({self.base_url!r})"


def _error_message(response: Any) -> str:
    try:
        error = response.json().get("error")
        return str(error.get("message") if isinstance(error, dict) else error)[:300]
    except (ValueError, AttributeError):
        return response.text[:300]
