"""Prometheus metrics of a deployment's server (`GET /metrics`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
INTER_TOKEN_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2)
TOKEN_BUCKETS = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
# A client that hung up before its answer ended (nginx's code): not a server error.
CLIENT_CLOSED = 499


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: scrapers do not need them
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("foundryctl_requests", "HTTP requests to the API, by route and status code.",
                                ["route", "code"], registry=r)
        self.latency = Histogram("foundryctl_request_duration_seconds", "Time to answer an API request.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("foundryctl_time_to_first_token_seconds", "Time from request to first token.",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.queue_time = Histogram("foundryctl_queue_time_seconds",
                                    "Time a request waited for a batch slot (its longest choice).",
                                    buckets=QUEUE_BUCKETS, registry=r)
        self.inter_token_latency = Histogram("foundryctl_inter_token_latency_seconds",
                                     "Time between successive generated tokens of a sequence.",
                                     buckets=INTER_TOKEN_BUCKETS, registry=r)
        self.prompt_tokens = Histogram("foundryctl_request_prompt_tokens", "Prompt tokens per request.",
                                       buckets=TOKEN_BUCKETS, registry=r)
        self.generation_tokens = Histogram("foundryctl_request_generation_tokens",
                                           "Generated tokens per request (all its choices).",
                                           buckets=TOKEN_BUCKETS, registry=r)
        self.token_count = Counter("foundryctl_tokens", "Tokens processed, by type (prompt, completion).",
                                   ["type"], registry=r)
        self.filtered_requests = Counter("foundryctl_filtered_requests",
                                         "Requests the content filter blocked, by stage and category.",
                                         ["stage", "category"], registry=r)
        self.active = Gauge("foundryctl_active_sequences", "Sequences being decoded.", registry=r)
        self.queued = Gauge("foundryctl_queued_requests", "Requests waiting for a batch slot.", registry=r)
        self.model = Gauge("foundryctl_model_info", "The model being served (value 1).", ["model"], registry=r)
        self._model: str | None = None

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def first_token(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def inter_token(self, seconds: float, tokens: int) -> None:
        """`tokens` tokens arrived together after `seconds`: each counts an equal share."""
        for _ in range(tokens):
            self.inter_token_latency.observe(seconds / tokens)

    def finished(self, prompt: int, completion: int, queued: float | None) -> None:
        self.token_count.labels("prompt").inc(prompt)
        self.token_count.labels("completion").inc(completion)
        self.prompt_tokens.observe(prompt)
        self.generation_tokens.observe(completion)
        if queued is not None:
            self.queue_time.observe(queued)

    def filtered(self, stage: str, categories: Iterable[str]) -> None:
        for category in categories:
            self.filtered_requests.labels(stage, category).inc()

    def set_engine(self, stats: dict[str, Any]) -> None:
        self.active.set(stats.get("active", 0))
        self.queued.set(stats.get("queued", 0))

    def set_model(self, model_id: str) -> None:
        if self._model is not None:
            self.model.remove(self._model)
        self._model = model_id
        self.model.labels(model_id).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
