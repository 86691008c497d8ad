"""Evaluation metrics: each maps a set of answered examples to one value (and each example's
score), deterministically. Text scorers are in `scorers.py`; classification metrics come from
scikit-learn; the LLM judge is in `judge.py`.

A metric is written as its name or as a mapping with its settings:

    metrics:
      - exact_match
      - {name: regex_match, pattern: '^\\d{4}-\\d{2}-\\d{2}$'}
      - {name: json_schema, schema: {type: object, required: [order_id]}}
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

CHAT, CLASSIFICATION = "chat_completion", "text_classification"


@dataclass(frozen=True)
class Example:
    index: int
    prompt: list[dict]
    reference: str | None
    label: str | None
    prediction: str
    completion_tokens: int
    finish_reason: str
    reference_nll: float | None = None
    reference_tokens: int | None = None


@dataclass(frozen=True)
class MetricResult:
    name: str
    value: float
    per_example: list[float | None]
    higher_is_better: bool


@dataclass(frozen=True)
class _Metric:
    tasks: frozenset[str]
    higher_is_better: bool
    summary: str


METRICS: dict[str, _Metric] = {
    "exact_match": _Metric(frozenset({CHAT}), True, "the answer equals the reference (surrounding whitespace aside)"),
    "normalized_match": _Metric(frozenset({CHAT}), True, "equal after lower-casing and dropping punctuation, "
                                                         "articles and extra spaces (SQuAD)"),
    "regex_match": _Metric(frozenset({CHAT}), True, "the answer matches `pattern` (re.search)"),
    "contains": _Metric(frozenset({CHAT}), True, "the answer contains `text` (default: the reference), "
                                                 "case-insensitively"),
    "json_valid": _Metric(frozenset({CHAT}), True, "the answer is JSON (or one fenced ```json block)"),
    "json_schema": _Metric(frozenset({CHAT}), True, "the answer is JSON that validates against `schema`"),
    "rouge_l": _Metric(frozenset({CHAT}), True, "ROUGE-L F-measure against the reference (rouge-score)"),
    "token_f1": _Metric(frozenset({CHAT}), True, "word-overlap F1 against the reference (SQuAD)"),
    "refusal_rate": _Metric(frozenset({CHAT}), False, "share of answers that refuse (phrase patterns; "
                                                      "`patterns` overrides them)"),
    "mean_length_tokens": _Metric(frozenset({CHAT}), False, "mean completion tokens per answer"),
    "ends_with_eos": _Metric(frozenset({CHAT}), True, "share of answers that stopped by themselves "
                                                      "(not cut at max_tokens)"),
    "perplexity": _Metric(frozenset({CHAT}), False, "exp of the mean negative log-likelihood per reference "
                                                    "token (local backend: needs the weights)"),
    "judge": _Metric(frozenset({CHAT}), True, "mean score an LLM judge gives each answer (judge.py)"),
    "accuracy": _Metric(frozenset({CLASSIFICATION}), True, "share of texts labelled correctly"),
    "f1_macro": _Metric(frozenset({CLASSIFICATION}), True, "F1 averaged over labels, unweighted"),
    "precision_macro": _Metric(frozenset({CLASSIFICATION}), True, "precision averaged over labels"),
    "recall_macro": _Metric(frozenset({CLASSIFICATION}), True, "recall averaged over labels"),
    "per_label": _Metric(frozenset({CLASSIFICATION}), True, "precision[LABEL], recall[LABEL] and f1[LABEL] "
                                                            "for every label"),
}
PER_LABEL = ("precision", "recall", "f1")


class JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str | None = Field(None, pattern=r"^https?://", description=(
        "Base URL of an OpenAI-compatible API (…/v1), outside the manifest."))
    deployment: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description=(
        "A Deployment of this manifest as the judge (its endpoint and key are read when the "
        "evaluation runs); instead of `endpoint`."))
    model: str = Field("default", min_length=1, description="The judge's model (or deployment) name.")
    key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description=(
        "Environment variable holding the judge's key at `endpoint` (never the key itself); none: no key."))
    prompt: str = Field(min_length=1, description="Template with {prompt}, {reference} and {prediction}.")
    prompt_version: str = Field("1", min_length=1, description="Bump it when the prompt's meaning changes.")
    scale: tuple[int, int] | Literal["pass_fail"] = Field((1, 5), description=(
        "[LOW, HIGH]: the judge answers an integer score; pass_fail: PASS or FAIL (scored 1 or 0)."))
    concurrency: int = Field(4, ge=1, le=64)
    timeout: float = Field(60.0, gt=0, le=600)

    @field_validator("prompt")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        import string

        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = names - {"prompt", "reference", "prediction"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {', '.join(sorted(unknown))}: use {{prompt}}, "
                             "{reference} and {prediction}")
        if "prediction" not in names:
            raise ValueError("the judge's prompt must show the answer: put {prediction} in it")
        return value

    # The key of a `deployment` judge, read from the backend at run time: never dumped, shown
    # or stored (a private attribute), and only on the copy `with_endpoint` makes.
    _key: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _one_endpoint(self) -> JudgeConfig:
        if (self.endpoint is None) == (self.deployment is None):
            raise ValueError("a judge is either `endpoint: URL` (with `key_env`) or `deployment: NAME` of this manifest")
        if self.deployment is not None and self.key_env is not None:
            raise ValueError("a `deployment` judge's key is read from the deployment: leave out `key_env`")
        return self

    def with_endpoint(self, url: str, key: str) -> JudgeConfig:
        """This `deployment` judge pointed at the deployment's endpoint, with its key."""
        # Our endpoints name the model by the deployment; Azure's serverless ones ignore it.
        resolved = self.model_copy(update={"endpoint": url, **({"model": self.deployment}
                                                                if self.model == "default" else {})})
        resolved._key = key
        return resolved

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: Any) -> Any:
        if isinstance(value, tuple) and value[0] >= value[1]:
            raise ValueError("scale is [LOW, HIGH] with LOW < HIGH")
        return value


class MetricConfig(BaseModel):
    """One metric and its settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    pattern: str | None = Field(None, description="regex_match: the regular expression.")
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="json_schema: the JSON Schema.")
    text: str | None = Field(None, description="contains: the text (default: the reference).")
    patterns: list[str] | None = Field(None, description="refusal_rate: refusal phrases (regular expressions).")
    judge: JudgeConfig | None = Field(None, description="judge: the endpoint, model, prompt and scale.")

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in METRICS:
            from foundryctl.suggest import did_you_mean

            raise ValueError(f"unknown metric {value!r}" + (did_you_mean(value, METRICS) or "")
                             + f" (metrics: {', '.join(METRICS)})")
        return value

    @model_validator(mode="after")
    def _settings(self) -> MetricConfig:
        needs = {"regex_match": "pattern", "json_schema": "schema_", "judge": "judge"}
        field = needs.get(self.name)
        if field is not None and getattr(self, field) is None:
            raise ValueError(f"{self.name} needs `{field.rstrip('_')}`")
        for own, metric in (("pattern", "regex_match"), ("schema_", "json_schema"), ("text", "contains"),
                            ("patterns", "refusal_rate"), ("judge", "judge")):
            if getattr(self, own) is not None and self.name != metric:
                raise ValueError(f"`{own.rstrip('_')}` belongs to {metric}, not {self.name}")
        for pattern in ([self.pattern] if self.pattern else []) + list(self.patterns or []):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from None
        if self.schema_ is not None:
            from jsonschema import Draft202012Validator, SchemaError
            from jsonschema.validators import validator_for

            try:
                validator_for(self.schema_, default=Draft202012Validator).check_schema(self.schema_)
            except SchemaError as exc:
                raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from None
        return self


def with_judge_endpoints(metrics: Sequence[MetricConfig],
                         endpoint_of: Callable[[str], tuple[str, str]]) -> list[MetricConfig]:
    """`metrics` with each `deployment` judge resolved by `endpoint_of(NAME) -> (url, key)`."""
    out = []
    for config in metrics:
        judge = config.judge
        if judge is not None and judge.deployment is not None and judge.endpoint is None:
            config = config.model_copy(update={"judge": judge.with_endpoint(*endpoint_of(judge.deployment))})
        out.append(config)
    return out


def parse_metrics(raw: Any) -> list[MetricConfig]:
    """`metrics:` as written (names or mappings, or MetricConfigs already) -> MetricConfigs;
    ValueError names the item at fault."""
    if not isinstance(raw, list):
        raise ValueError("metrics is a list of metric names or {name: ..., settings} mappings")
    out: list[MetricConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if isinstance(item, MetricConfig):
            config = item
        else:
            try:
                config = MetricConfig.model_validate({"name": item} if isinstance(item, str) else item)
            except ValidationError as exc:
                problem = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise ValueError(f"metrics[{i}]: {problem}") from None
        key = config.name if config.name not in ("regex_match", "contains", "json_schema") else \
            config.model_dump_json(by_alias=True)
        if key in seen:
            raise ValueError(f"metrics[{i}]: {config.name} is listed twice")
        seen.add(key)
        out.append(config)
    names = [c.name for c in out]
    for name in ("regex_match", "contains", "json_schema"):
        if names.count(name) > 1:
            raise ValueError(f"{name} is listed {names.count(name)} times: give one, its results are named {name}")
    return out


def check_metrics(metrics: Sequence[MetricConfig], task: str) -> list[str]:
    """Why each metric cannot be computed for `task` (empty: all can)."""
    return [f"metric {m.name} does not apply to {task} data (it is for "
            f"{' and '.join(sorted(METRICS[m.name].tasks))}): "
            f"{', '.join(n for n, d in METRICS.items() if task in d.tasks)} do"
            for m in metrics if task not in METRICS[m.name].tasks]


def provided_by(name: str) -> Callable[[str], bool]:
    """Whether a gate's metric name is a value metric `name` produces (per_label: f1[LABEL]...)."""
    if name == "per_label":
        return lambda metric: bool(re.fullmatch(rf"(?:{'|'.join(PER_LABEL)})\[[^\]]+\]", metric))
    return lambda metric: metric == name


def higher_is_better(metric: str) -> bool:
    entry = METRICS.get(metric.split("[")[0]) or METRICS.get("per_label")
    return entry.higher_is_better if entry else True


def compute(metrics: Sequence[MetricConfig], examples: Sequence[Example], task: str) -> dict[str, MetricResult]:
    """Every metric over `examples`; ValueError for an empty set or a metric of another task."""
    if not examples:
        raise ValueError("no examples to score")
    problems = check_metrics(metrics, task)
    if problems:
        raise ValueError(problems[0])
    out: dict[str, MetricResult] = {}
    for config in metrics:
        if config.name == "per_label":
            out.update(_per_label(examples))
        elif config.name in _CLASSIFICATION:
            out[config.name] = _CLASSIFICATION[config.name](examples)
        elif config.name == "judge":
            from foundryctl.evaluation.judge import judge_scores

            assert config.judge is not None
            out["judge"] = _mean("judge", judge_scores(config.judge, examples), True)
        elif config.name == "perplexity":
            out["perplexity"] = _perplexity(examples)
        else:
            score = _scorer(config)
            out[config.name] = _mean(config.name, [score(e) for e in examples], METRICS[config.name].higher_is_better)
    return out


def _mean(name: str, scores: list[float | None], better_high: bool) -> MetricResult:
    known = [s for s in scores if s is not None]
    # No example could be scored (a judge that never answered): NaN is no value; the gate says so.
    value = sum(known) / len(known) if known else math.nan
    return MetricResult(name, value, scores, better_high)


def _scorer(config: MetricConfig) -> Callable[[Example], float | None]:
    from foundryctl.evaluation import scorers

    name = config.name
    if name == "exact_match":
        return lambda e: None if e.reference is None else float(e.prediction.strip() == e.reference.strip())
    if name == "normalized_match":
        return lambda e: None if e.reference is None else float(
            scorers.normalize_answer(e.prediction) == scorers.normalize_answer(e.reference))
    if name == "regex_match":
        compiled = re.compile(config.pattern or "")
        return lambda e: float(compiled.search(e.prediction) is not None)
    if name == "contains":
        wanted = config.text
        return lambda e: None if (wanted or e.reference) is None else float(
            (wanted or e.reference or "").casefold() in e.prediction.casefold())
    if name == "json_valid":
        return lambda e: float(scorers.parse_json_answer(e.prediction)[0])
    if name == "json_schema":
        from jsonschema import Draft202012Validator
        from jsonschema.validators import validator_for

        validator = validator_for(config.schema_, default=Draft202012Validator)(config.schema_)

        def schema(e: Example) -> float:
            ok, value = scorers.parse_json_answer(e.prediction)
            return float(ok and validator.is_valid(value))
        return schema
    if name == "rouge_l":
        return lambda e: None if e.reference is None else scorers.rouge_l(e.prediction, e.reference)
    if name == "token_f1":
        return lambda e: None if e.reference is None else scorers.token_f1(e.prediction, e.reference)
    if name == "refusal_rate":
        patterns = scorers.compile_patterns(config.patterns or scorers.DEFAULT_REFUSAL_PATTERNS)
        return lambda e: float(scorers.is_refusal(e.prediction, patterns))
    if name == "mean_length_tokens":
        return lambda e: float(e.completion_tokens)
    if name == "ends_with_eos":
        return lambda e: float(e.finish_reason == "stop")
    raise AssertionError(f"no scorer for {name}")


def _perplexity(examples: Sequence[Example]) -> MetricResult:
    nll = sum(e.reference_nll for e in examples if e.reference_nll is not None and e.reference_tokens)
    tokens = sum(e.reference_tokens for e in examples if e.reference_nll is not None and e.reference_tokens)
    per = [math.exp(e.reference_nll / e.reference_tokens) if e.reference_nll is not None and e.reference_tokens
           else None for e in examples]
    return MetricResult("perplexity", math.exp(nll / tokens) if tokens else math.nan, per, False)


def _labels(examples: Sequence[Example]) -> tuple[list[str], list[str], list[str]]:
    gold = [e.label or "" for e in examples]
    predicted = [e.prediction for e in examples]
    return gold, predicted, sorted(set(gold) | set(predicted))


def _classification(name: str) -> Callable[[Sequence[Example]], MetricResult]:
    def metric(examples: Sequence[Example]) -> MetricResult:
        from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

        gold, predicted, labels = _labels(examples)
        per = [float(g == p) for g, p in zip(gold, predicted)]
        if name == "accuracy":
            value = accuracy_score(gold, predicted)
        else:
            function = {"f1_macro": f1_score, "precision_macro": precision_score, "recall_macro": recall_score}[name]
            value = function(gold, predicted, labels=labels, average="macro", zero_division=0)
        return MetricResult(name, float(value), per, True)  # type: ignore[arg-type]
    return metric


_CLASSIFICATION = {name: _classification(name) for name in ("accuracy", "f1_macro", "precision_macro",
                                                             "recall_macro")}


def _per_label(examples: Sequence[Example]) -> dict[str, MetricResult]:
    from sklearn.metrics import precision_recall_fscore_support

    gold, predicted, labels = _labels(examples)
    precision, recall, f1, _ = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    out = {}
    for i, label in enumerate(labels):
        for metric, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            per = [float(p == label and g == label) if (p == label if metric == "precision" else g == label)
                   else None for g, p in zip(gold, predicted)] if metric != "f1" else \
                [float(g == p) if label in (g, p) else None for g, p in zip(gold, predicted)]
            out[f"{metric}[{label}]"] = MetricResult(f"{metric}[{label}]", float(values[i]), per, True)
    return out
