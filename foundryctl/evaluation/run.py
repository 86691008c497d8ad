"""One evaluation run: answers from the target (and each baseline), the metrics over them, the
gate judged on the values, and the rows kept for `foundryctl evals show`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from foundryctl.evaluation.examples import Case
from foundryctl.evaluation.predictors import GenerationSettings, Prediction, Predictor

Say = Callable[..., None]  # a Progress: (message, completed=None, total=None)
# Where a gate condition compares with a baseline that has no values because nothing was
# served yet (the first deployment): the condition is skipped, and says so.
NOTHING_SERVED = "no model served yet"


@dataclass
class Scored:
    """What one model's answers scored: metric values and each example's scores."""

    values: dict[str, float]
    per_example: dict[str, list[float | None]]
    predictions: list[Prediction]
    seconds: float

    @property
    def examples_per_second(self) -> float:
        return len(self.predictions) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class RunOutcome:
    target: Scored
    baselines: dict[str, Scored] = field(default_factory=dict)
    missing_baselines: dict[str, str] = field(default_factory=dict)  # name -> why it has no values


def score(predictor: Predictor, cases: Sequence[Case], metrics: Sequence[Any], task: str,
          settings: GenerationSettings, say: Say, label: str) -> Scored:
    """`predictor`'s answers to `cases`, scored by `metrics`."""
    from foundryctl.evaluation.metrics import Example, compute

    started = time.perf_counter()
    predictions = predictor.predict(
        cases, settings, lambda done, total: say(f"{label}: {done}/{total} examples", completed=done, total=total))
    seconds = time.perf_counter() - started
    examples = [Example(index=c.index, prompt=c.prompt, reference=c.reference, label=c.label,
                        prediction=p.text, completion_tokens=p.completion_tokens, finish_reason=p.finish_reason,
                        reference_nll=p.reference_nll, reference_tokens=p.reference_tokens)
                for c, p in zip(cases, predictions)]
    results = compute(list(metrics), examples, task)
    return Scored({name: r.value for name, r in results.items()},
                  {name: list(r.per_example) for name, r in results.items()}, predictions, seconds)


def score_and_close(predictor: Predictor, cases: Sequence[Case], metrics: Sequence[Any], task: str,
                    settings: GenerationSettings, say: Say, label: str) -> Scored:
    try:
        return score(predictor, cases, metrics, task, settings, say, label)
    finally:
        predictor.close()


def score_serving_baseline(outcome: RunOutcome, deployment: str, endpoint: Predictor | None,
                           cases: Sequence[Case], metrics: Sequence[Any], task: str, settings: GenerationSettings,
                           say: Say, *, serves_target: bool = False) -> None:
    """Score Deployment `deployment`'s endpoint into the outcome's serving baseline, or record
    why it has none (nothing served yet, or it already serves the target itself)."""
    if endpoint is None:
        outcome.missing_baselines["serving"] = f"{NOTHING_SERVED} by Deployment.{deployment}"
    elif serves_target:
        endpoint.close()
        outcome.missing_baselines["serving"] = f"Deployment.{deployment} serves this target already"
    else:
        outcome.baselines["serving"] = score_and_close(endpoint, cases, metrics, task, settings, say,
                                                       f"baseline Deployment.{deployment}")


def judge(conditions: Sequence[str], outcome: RunOutcome) -> dict[str, Any]:
    """The gate on the run's values: {"passed": bool, "conditions": [{condition, passed, text}]}.
    No conditions: passed. A condition on a baseline that has nothing to compare with because no
    model is served yet is skipped (passed, and says so); one that cannot be decided otherwise fails."""
    from foundryctl.evaluation.gate import evaluate, parse_condition

    baselines = {name: scored.values for name, scored in outcome.baselines.items()}
    rows = []
    for text in conditions:
        condition = parse_condition(text)
        wanted = [name or _default_baseline(outcome) for name in condition.baseline_needed]
        skipped = next((outcome.missing_baselines[n] for n in wanted if n in outcome.missing_baselines), None)
        if skipped is not None:
            rows.append({"condition": text, "passed": True, "skipped": True,
                         "text": f"{text}: skipped ({skipped})"})
            continue
        result = evaluate(condition, outcome.target.values, baselines)
        rows.append({"condition": text, "passed": bool(result.passed), "text": result.text,
                     **({"undecided": True} if result.passed is None else {})})
    return {"passed": all(r["passed"] for r in rows), "conditions": rows}


def _default_baseline(outcome: RunOutcome) -> str:
    names = [*outcome.baselines, *outcome.missing_baselines]
    return "serving" if "serving" in names else (names[0] if names else "")


def example_rows(cases: Sequence[Case], outcome: RunOutcome) -> list[dict[str, Any]]:
    """One row per example: the prompt, the reference or label, the answer and its scores (and
    each baseline's answer and scores), for `evals show --examples`."""
    rows = []
    for i, case in enumerate(cases):
        prediction = outcome.target.predictions[i]
        row: dict[str, Any] = {
            "index": case.index, "prompt": case.prompt[-1]["content"] if case.prompt else "",
            "expected": case.reference if case.reference is not None else case.label,
            "answer": prediction.text, "finish_reason": prediction.finish_reason,
            "completion_tokens": prediction.completion_tokens,
            "scores": {m: _finite(v[i]) for m, v in outcome.target.per_example.items() if i < len(v)}}
        for name, scored in outcome.baselines.items():
            row[f"baseline.{name}"] = {"answer": scored.predictions[i].text,
                                       "scores": {m: _finite(v[i]) for m, v in scored.per_example.items()
                                                  if i < len(v)}}
        rows.append(row)
    return rows


def summary(key: str, attributes: Mapping[str, Any], outcome: RunOutcome, gate: dict[str, Any],
            cases: int, skipped: int, target_model: str) -> dict[str, Any]:
    """The run as `results.json` holds it (and, less the example rows, as the state's outputs)."""
    return {
        "run": key, "status": "Completed", "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": attributes.get("task"), "examples": cases, "skipped_lines": skipped,
        "target": dict(attributes.get("target") or {}), "target_version": attributes.get("target_version"),
        "model": target_model, "values": {k: _finite(v) for k, v in outcome.target.values.items()},
        "baselines": {name: {k: _finite(v) for k, v in scored.values.items()}
                      for name, scored in outcome.baselines.items()},
        "missing_baselines": dict(outcome.missing_baselines),
        "gate": gate, "examples_per_second": round(outcome.target.examples_per_second, 3),
        "seconds": round(outcome.target.seconds, 3)}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
