"""Promotion gates: a Deployment's `promote_when` names Evaluations whose gates a new model must
pass before it serves. The plan shows each gate (its result once the candidate has been
scored), and apply refuses the swap when one fails or has not scored this candidate."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from foundryctl.errors import BackendError, Diagnostic

if TYPE_CHECKING:
    from foundryctl.backends.base import Observed
    from foundryctl.manifest.model import Manifest, ResourceDecl

PASSED, FAILED, NOT_RUN = "passed", "failed", "not-run"


def promotes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
    """Whether the change puts a model into service: a new deployment, or another model."""
    return bool(after.get("promote_when")) and (before is None or _served(before) != _served(after))


def gate_views(before: Mapping[str, Any] | None, after: Mapping[str, Any],
               observed: Mapping[str, Observed | None]) -> list[dict[str, Any]]:
    """One view per gate of a promoting change: {evaluation, status, conditions, values,
    baselines}; status `not-run` until the evaluation has scored this candidate."""
    if not promotes(before, after):
        return []
    views = []
    for address in after.get("promote_when") or []:
        seen = observed.get(address)
        views.append(_view(address, seen.outputs if seen is not None else None, after))
    return views


def gate_notes(views: list[dict[str, Any]]) -> list[str]:
    """The gate views as plan lines."""
    notes = []
    for view in views:
        if view["status"] == NOT_RUN:
            notes.append(f"gated on {view['evaluation']} (not yet run for this model): apply evaluates the new "
                         "model and swaps only if the gate passes")
            continue
        verdict = "gate passed" if view["status"] == PASSED else "gate FAILED: apply keeps the current model"
        conditions = "; ".join(c["text"] + _delta(c, view) for c in view["conditions"]) or "no conditions"
        notes.append(f"{view['evaluation']} {verdict} ({conditions})")
    return notes


def admit_promotion(before: Mapping[str, Any] | None, after: Mapping[str, Any],
                    outputs_of: Callable[[str], dict[str, Any] | None]) -> None:
    """Raise unless every gate of a promoting change has passed on this very candidate."""
    if not promotes(before, after):
        return
    failed, missing = [], []
    for address in after.get("promote_when") or []:
        view = _view(address, outputs_of(address), after)
        if view["status"] == NOT_RUN:
            missing.append(address)
        elif view["status"] == FAILED:
            failed.append(view)
    keeps = "the current model keeps serving" if before is not None else "nothing is deployed"
    if missing:
        raise BackendError("GateNotEvaluated", f"{', '.join(missing)} has not scored the new model "
                           f"{_served_text(after)}, so it is not promoted ({keeps})",
                           hint="apply again: the evaluation runs first; or look at it with "
                                f"`foundryctl evals show {missing[0].partition('.')[2]}`")
    if failed:
        lines = [f"{v['evaluation']}: " + "; ".join(c["text"] for c in v["conditions"] if not c["passed"])
                 for v in failed]
        raise BackendError("GateFailed", f"the new model {_served_text(after)} failed its gate, so it is not "
                           f"promoted ({keeps}): " + " | ".join(lines),
                           hint=f"inspect the candidate with `foundryctl evals show "
                                f"{failed[0]['evaluation'].partition('.')[2]} --examples`; change the training "
                                "(data, hyperparameters) and apply again, or relax the gate")


def promote_when_checks(decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
    """What the manifest alone shows wrong with a Deployment's `promote_when`."""
    spec = decl.spec
    out: list[Diagnostic] = []
    for i, address in enumerate(spec.promote_when):  # type: ignore[attr-defined]
        where = decl.position_of(("promote_when", i))
        evaluation = manifest.resources.get(address)
        if evaluation is None:
            out.append(Diagnostic.error(f"promote_when names {address}, which is not declared in the manifest",
                                        where, decl.address, code="unknown-reference",
                                        hint="declare the Evaluation (kind: Evaluation) or remove it here"))
            continue
        target = evaluation.spec.target  # type: ignore[attr-defined]
        if manifest.backend.type == "azure":
            out.append(Diagnostic.error(
                "promotion gates need the new model scored before it serves; on the azure backend a fine-tuned "
                "model is scored through a deployment, and Azure permits one deployment per custom model",
                where, decl.address, code="gate-unsupported",
                hint="on Azure, evaluate the Deployment itself (Evaluation target: {deployment: NAME}) after "
                     "the swap; gates run on the local backend"))
            continue
        if target.deployment == spec.name:  # type: ignore[attr-defined]
            out.append(Diagnostic.error(
                f"{address} scores this Deployment's own endpoint, which serves the new model only after the "
                "swap the gate decides", where, decl.address, code="gate-target-mismatch",
                hint="target the FineTuneJob the deployment serves: target: {job: NAME}"))
            continue
        model = spec.model  # type: ignore[attr-defined]
        if model.job is None or target.job != model.job or (target.checkpoint or "last") != (model.checkpoint or "last"):
            served = (f"FineTuneJob {model.job!r}" + (f" checkpoint {model.checkpoint}" if model.checkpoint else "")
                      if model.job else f"registered model {model.name}:{model.version}")
            scored = (f"FineTuneJob {target.job!r}" + (f" checkpoint {target.checkpoint}" if target.checkpoint else "")
                      if target.job else ("a deployment" if target.deployment else f"base model {target.base_model}"))
            out.append(Diagnostic.error(
                f"{address} scores {scored}, but this deployment serves {served}: its gate says nothing about "
                "the model being promoted", where, decl.address, code="gate-target-mismatch",
                hint="make the Evaluation's target the deployment's model (same job and checkpoint)"))
    return out


def _view(address: str, outputs: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    if not outputs or not _scored(outputs, after):
        return {"evaluation": address, "status": NOT_RUN, "conditions": [], "values": {}, "baselines": {}}
    gate = outputs.get("gate") or {}
    return {"evaluation": address, "status": PASSED if gate.get("passed") else FAILED,
            "conditions": list(gate.get("conditions") or []), "values": dict(outputs.get("values") or {}),
            "baselines": dict(outputs.get("baselines") or {}), "run": outputs.get("run")}


def _scored(outputs: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether the evaluation's latest run scored the model `after` would serve."""
    model = after.get("model") or {}
    target = outputs.get("target") or {}
    if target.get("job") != model.get("job") or outputs.get("target_version") != model.get("run"):
        return False
    wanted = model.get("resolved") or model.get("checkpoint") or "last"
    scored = target.get("resolved") or target.get("checkpoint") or "last"
    return scored == wanted or (not model.get("resolved") and target.get("checkpoint") == model.get("checkpoint"))


def _served(attributes: Mapping[str, Any]) -> Any:
    model = dict(attributes.get("model") or {})
    return {k: model.get(k) for k in ("job", "run", "name", "version", "checkpoint", "resolved")}


def _served_text(after: Mapping[str, Any]) -> str:
    model = after.get("model") or {}
    if model.get("job"):
        checkpoint = model.get("resolved") or model.get("checkpoint")
        return f"of FineTuneJob.{model['job']} (run {model.get('run')}" + (
            f", {checkpoint})" if checkpoint and checkpoint != "last" else ")")
    return f"{model.get('name')}:{model.get('version')}"


def _delta(condition: Mapping[str, Any], view: Mapping[str, Any]) -> str:
    """`, +0.04 vs serving` for a condition's metric when the serving baseline has it."""
    from foundryctl.evaluation.gate import parse_condition

    try:
        metric = parse_condition(condition["condition"]).metric
    except (ValueError, KeyError, AttributeError):
        return ""
    for name in ("serving", "base"):
        base = (view.get("baselines") or {}).get(name) or {}
        value, reference = (view.get("values") or {}).get(metric), base.get(metric)
        if isinstance(value, (int, float)) and isinstance(reference, (int, float)):
            return f", {value - reference:+.4g} vs {name}"
    return ""
