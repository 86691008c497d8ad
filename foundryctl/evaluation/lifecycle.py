"""What an Evaluation handler does on any backend, around the backend's own way of scoring:
a run whose key has results already is only judged again; a new one is scored, stored and
made the one that stands; `observe` reads the standing run back as the refresh sees it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from foundryctl.backends.base import Observed, Progress
from foundryctl.errors import BackendError
from foundryctl.evaluation.examples import Case
from foundryctl.evaluation.run import RunOutcome, Scored, example_rows, judge, summary
from foundryctl.evaluation.store import EvaluationStore
from foundryctl.kinds.checkpoint import LAST
from foundryctl.kinds.evaluation import COMPLETED, GATE_FAILED, run_key

# Scores the target (and baselines): (outcome, the scored model's name, the cases, lines skipped).
Scorer = Callable[[], tuple[RunOutcome, str, list[Case], int]]


def run(store: EvaluationStore, name: str, attributes: dict[str, Any], scorer: Scorer, progress: Progress) -> None:
    key = run_key(attributes)
    stored = store.results(key)
    if stored is not None:
        progress(f"results for this target and data exist (run {key}): judging the gate on them")
        outcome = _outcome_of(stored)
        gate = judge(attributes.get("gate") or [], outcome)
        results = {**summary(key, attributes, outcome, gate, stored.get("examples", 0),
                             stored.get("skipped_lines", 0), stored.get("model", "")),
                   "finished_at": stored.get("finished_at"), "seconds": stored.get("seconds"),
                   "examples_per_second": stored.get("examples_per_second")}
        store.save_run(key, results, store.examples(key))
    else:
        outcome, model, cases, skipped = scorer()
        gate = judge(attributes.get("gate") or [], outcome)
        results = summary(key, attributes, outcome, gate, len(cases), skipped, model)
        store.save_run(key, results, example_rows(cases, outcome))
    store.set_latest({**results, "attributes": {k: v for k, v in attributes.items() if k != "status"}})
    verdict = "no gate" if not gate["conditions"] else ("gate passed" if gate["passed"] else "gate FAILED")
    progress(f"{verdict}: " + ", ".join(f"{k} {_short(v)}" for k, v in results["values"].items()))
    if not gate["passed"] and not attributes.get("gated_by"):
        failed = "; ".join(c["text"] for c in gate["conditions"] if not c["passed"])
        raise BackendError("GateFailed", f"the evaluation's gate failed: {failed}",
                           hint=f"see the answers with `foundryctl evals show {name} --examples --failed`; the "
                                "results are stored, so the next apply judges them again without scoring")


def observe(store: EvaluationStore, evaluation_id: str) -> Observed | None:
    latest = store.latest()
    if latest is None:
        return None
    outputs = {k: v for k, v in latest.items() if k != "attributes"}
    outputs["results"] = str(store.run_dir(latest["run"]))
    outputs["checkpoint_results"] = checkpoint_results(store)
    checked = not (latest.get("attributes") or {}).get("gated_by")
    failed = checked and (latest.get("gate") or {}).get("passed") is False
    return Observed(evaluation_id, {**latest.get("attributes", {}), "status": GATE_FAILED if failed else COMPLETED},
                    outputs)


def checkpoint_results(store: EvaluationStore) -> dict[str, dict[str, dict[str, float]]]:
    """Every stored run of the job run scored last, by checkpoint, as `best(Evaluation.NAME.METRIC)`
    reads them: {JOB: {CHECKPOINT: {METRIC: value}}}."""
    latest = store.latest() or {}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for stored in store.runs():
        target = stored.get("target") or {}
        if not target.get("job") or stored.get("target_version") != latest.get("target_version"):
            continue
        checkpoint = target.get("resolved") or target.get("checkpoint") or LAST
        out.setdefault(target["job"], {})[checkpoint] = {
            k: v for k, v in (stored.get("values") or {}).items() if isinstance(v, (int, float))}
    return out


def _outcome_of(stored: dict[str, Any]) -> RunOutcome:
    """A stored run's values as a RunOutcome (no predictions: enough to judge a gate)."""
    def scored(values: dict[str, Any]) -> Scored:
        return Scored({k: v for k, v in values.items() if isinstance(v, (int, float))}, {}, [], 0.0)

    return RunOutcome(scored(stored.get("values") or {}),
                      {n: scored(v) for n, v in (stored.get("baselines") or {}).items()},
                      dict(stored.get("missing_baselines") or {}))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
