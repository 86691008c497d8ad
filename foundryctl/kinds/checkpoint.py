"""Checkpoint selectors: which of a training run's checkpoints a resource means.

    last                          the run's final model (the default)
    epoch-N                       the checkpoint written at the end of epoch N
    step-N                        the checkpoint written at optimizer step N
    best(METRIC)                  the checkpoint whose epoch has the lowest METRIC (a loss)
    best(max:METRIC)              ... the highest METRIC (an accuracy); `min:` is the default
    best(Evaluation.NAME.METRIC)  the checkpoint an Evaluation scored best (`max:` default,
                                  `min:` for a metric where lower is better)

The grammar is one piece shared by a Deployment's `model.checkpoint` and an Evaluation's
target: `parse_selector` turns the text into a `CheckpointSelector`, and `resolve` picks a
checkpoint from a run's `CheckpointInfo`s. Metrics of the training run come with the
checkpoints; an Evaluation's per-checkpoint results come through an `EvaluationResults`
callable, so the evaluation kind can supply them without this module knowing it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from foundryctl.kinds.base import ADDRESS_NAME

LAST = "last"
_METRIC = r"[A-Za-z_][A-Za-z0-9_]*"
_NUMBERED = re.compile(r"^(epoch|step)-([0-9]+)$")
_BEST = re.compile(r"^best\(\s*(?:(min|max)\s*:\s*)?([^()]*?)\s*\)$")
_EVALUATION = re.compile(rf"^Evaluation\.({ADDRESS_NAME})\.({_METRIC})$")
_PLAIN_METRIC = re.compile(rf"^{_METRIC}$")
GRAMMAR = ("last, epoch-N, step-N, best(METRIC), best(max:METRIC) or best(Evaluation.NAME.METRIC), "
           "e.g. best(valid_loss)")


class SelectorError(ValueError):
    """Text that is not a checkpoint selector, or one that picks nothing."""


class CheckpointSelector(BaseModel):
    """A parsed selector. `kind` says which form; `number` is N of epoch-N/step-N; `metric`,
    `direction` and `evaluation` belong to best(...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["last", "epoch", "step", "best"]
    number: int | None = None
    metric: str | None = None
    direction: Literal["min", "max"] | None = None
    evaluation: str | None = None  # the Evaluation's name for best(Evaluation.NAME.METRIC)

    def __str__(self) -> str:
        if self.kind == LAST:
            return LAST
        if self.kind in ("epoch", "step"):
            return f"{self.kind}-{self.number}"
        metric = f"Evaluation.{self.evaluation}.{self.metric}" if self.evaluation else self.metric
        default = "max" if self.evaluation else "min"
        return f"best({'' if self.direction == default else f'{self.direction}:'}{metric})"


def parse_selector(text: str) -> CheckpointSelector:
    """The selector `text` names; SelectorError says what is wrong in the user's terms."""
    if not isinstance(text, str):
        raise SelectorError(f"a checkpoint selector is a string ({GRAMMAR}), not {type(text).__name__}")
    written = text.strip()
    if written == LAST:
        return CheckpointSelector(kind="last")
    numbered = _NUMBERED.match(written)
    if numbered:
        number = int(numbered.group(2))
        if number < 1:
            raise SelectorError(f"{written!r}: {numbered.group(1)}s count from 1")
        return CheckpointSelector(kind=numbered.group(1), number=number)  # type: ignore[arg-type]
    best = _BEST.match(written)
    if best:
        direction, metric = best.group(1), best.group(2)
        evaluation = _EVALUATION.match(metric)
        if evaluation:
            return CheckpointSelector(kind="best", evaluation=evaluation.group(1), metric=evaluation.group(2),
                                      direction=direction or "max")  # type: ignore[arg-type]
        if metric.startswith("Evaluation.") or "." in metric:
            raise SelectorError(f"{written!r}: an evaluation's metric is written Evaluation.NAME.METRIC")
        if not _PLAIN_METRIC.match(metric):
            raise SelectorError(f"{written!r}: {metric!r} is not a metric name (letters, digits and '_', "
                                "e.g. valid_loss)" if metric else f"{written!r}: best() needs a metric, "
                                "e.g. best(valid_loss)")
        return CheckpointSelector(kind="best", metric=metric, direction=direction or "min")  # type: ignore[arg-type]
    if written.startswith(("epoch", "step")):
        raise SelectorError(f"{written!r}: write epoch-N or step-N with N a whole number, e.g. epoch-2")
    raise SelectorError(f"{written!r} is not a checkpoint: use {GRAMMAR}")


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint of a run as its job reports it: its name (epoch-N), where it ends, and
    the run's metrics of that epoch (valid_loss, valid_mean_token_accuracy, ...)."""

    name: str
    epoch: int
    step: int
    metrics: Mapping[str, float] = field(default_factory=dict)


# (evaluation name, job name) -> the evaluation's value of each metric per checkpoint name,
# or None while it has none for that job's checkpoints.
EvaluationResults = Callable[[str, str], Mapping[str, Mapping[str, float]] | None]


def no_evaluation_results(evaluation: str, job: str) -> None:
    """The EvaluationResults to use where no evaluation has run."""
    return None


def resolve(selector: CheckpointSelector, job: str, checkpoints: Sequence[CheckpointInfo],
            evaluations: EvaluationResults = no_evaluation_results) -> str:
    """The name of the checkpoint `selector` picks among `checkpoints` of FineTuneJob `job`
    (`last` for the final model); SelectorError names the ones that exist when none fits."""
    if selector.kind == LAST:
        return LAST
    existing = ", ".join(c.name for c in checkpoints) or "none"
    if selector.kind in ("epoch", "step"):
        for checkpoint in checkpoints:
            if getattr(checkpoint, selector.kind) == selector.number:
                return checkpoint.name
        raise SelectorError(f"FineTuneJob {job!r} has no checkpoint {selector} (its checkpoints: {existing}"
                            + (f"; steps {', '.join(str(c.step) for c in checkpoints)}" if
                               selector.kind == "step" and checkpoints else "") + ")")
    if selector.evaluation is not None:
        results = evaluations(selector.evaluation, job)
        scores = {name: values[selector.metric] for name, values in (results or {}).items()
                  if any(c.name == name for c in checkpoints) and _number(values.get(selector.metric))}
        if not scores:
            raise SelectorError(f"Evaluation.{selector.evaluation} has no results for job {job}'s "
                                f"checkpoints yet" + ("" if results is None else f" (no {selector.metric!r})"))
        return _pick(scores, selector.direction)
    scores = {c.name: c.metrics[selector.metric] for c in checkpoints  # type: ignore[index]
              if _number(c.metrics.get(selector.metric))}  # type: ignore[arg-type]
    if not scores:
        known = sorted({m for c in checkpoints for m in c.metrics if _number(c.metrics[m])})
        raise SelectorError(f"no checkpoint of FineTuneJob {job!r} has a {selector.metric!r} metric "
                            f"(checkpoints: {existing}" + (f"; metrics: {', '.join(known)}" if known else "")
                            + ")" + ("; valid_* metrics need validation data" if
                                     selector.metric.startswith("valid_") else ""))
    return _pick(scores, selector.direction)


def _pick(scores: Mapping[str, float], direction: str | None) -> str:
    # Ties go to the earliest checkpoint: dict order is the checkpoints' order.
    chosen = min(scores, key=scores.__getitem__) if direction != "max" else max(scores, key=scores.__getitem__)
    return chosen


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def checkpoint_infos(rows: Sequence[Mapping[str, object]]) -> list[CheckpointInfo]:
    """CheckpointInfos from a job's `checkpoints` output (a list of {name, epoch, step, metrics})."""
    out = []
    for row in rows or ():
        try:
            out.append(CheckpointInfo(str(row["name"]), int(row["epoch"]), int(row["step"]),  # type: ignore[call-overload]
                                      dict(row.get("metrics") or {})))  # type: ignore[call-overload]
        except (KeyError, TypeError, ValueError):
            continue  # a row an older version wrote differently: not a checkpoint to pick
    return out


def observed_evaluation_results(observed: Mapping[str, object]) -> EvaluationResults:
    """EvaluationResults read from what the refresh saw: an Evaluation reports its results per
    job and checkpoint in its outputs, as `checkpoint_results: {JOB: {CHECKPOINT: {METRIC: value}}}`."""
    def results(evaluation: str, job: str) -> Mapping[str, Mapping[str, float]] | None:
        seen = observed.get(f"Evaluation.{evaluation}")
        outputs = getattr(seen, "outputs", None) or {}
        by_job = outputs.get("checkpoint_results") or {}
        return by_job.get(job) or None

    return results
