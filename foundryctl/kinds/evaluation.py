"""Evaluation: a model scored on a dataset, with a gate a Deployment can be promoted by.

The target is a FineTuneJob's model (or one of its checkpoints), a Deployment's endpoint, or
a base model. An evaluation's identity is what it scores (the target's training run and
checkpoint, or the deployment's model), the data version and the metric configuration:
changing any of them plans a re-run; a changed gate is judged again on the stored results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from foundryctl.errors import Diagnostic
from foundryctl.kinds.base import Kind, Ref, Spec
from foundryctl.kinds.checkpoint import GRAMMAR, parse_selector
from foundryctl.kinds.project import inside_project

if TYPE_CHECKING:
    from foundryctl.backends.base import Observed
    from foundryctl.manifest.model import Manifest, ResourceDecl

COMPLETED = "Completed"
GATE_FAILED = "GateFailed"
# Attributes whose change means the stored results score something else: a re-run.
RUN_IDENTITY = ("target", "target_version", "data", "data_version", "split", "metrics", "baseline",
                "generation", "max_examples", "serving_baseline")


def _normal_selector(text: str | None) -> str | None:
    return None if text is None else str(parse_selector(text))


class EvaluationTarget(BaseModel):
    """What is scored: exactly one of `job` (optionally a `checkpoint` of it), `deployment`
    or `base_model`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: Annotated[str | None, Ref("FineTuneJob"), Field(description=(
        "A FineTuneJob: its trained model, scored in-process on the local backend."))] = None
    checkpoint: Annotated[str | None, AfterValidator(_normal_selector), Field(description=(
        f"With `job`: one of its checkpoints instead of the final model: {GRAMMAR}."))] = None
    deployment: Annotated[str | None, Ref("Deployment"), Field(description=(
        "A Deployment: its endpoint is called like a client calls it (the azure backend's way)."))] = None
    base_model: str | None = Field(None, description="A base model, untrained (catalog name, hf:ORG/NAME or path:DIR).")

    @model_validator(mode="after")
    def _one_target(self) -> EvaluationTarget:
        given = [n for n in ("job", "deployment", "base_model") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `job`, `deployment` or `base_model`"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.checkpoint is not None and self.job is None:
            raise ValueError("`checkpoint` picks a checkpoint of a FineTuneJob: give it with `job`")
        if self.checkpoint is not None and parse_selector(self.checkpoint).evaluation is not None:
            raise ValueError("an Evaluation's target cannot pick its checkpoint by an evaluation's results")
        return self

    @field_validator("base_model")
    @classmethod
    def _known_model(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from foundryctl.models import parse_base_model

        parse_base_model(value)
        return value.strip()


class Baseline(BaseModel):
    """What the results are compared with: gate conditions name these as `baseline.base` and
    `baseline.serving` (plain `baseline`: serving when given, else base)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: bool = Field(False, description="Also score the target's base model, untrained.")
    serving: str | None = Field(None, description=(
        "A Deployment's name: also score the model it serves when the evaluation runs (before a "
        "gated swap, the model being replaced). No model served yet: no serving baseline."))


class Generation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(256, ge=1, le=8192, description="Longest answer, in tokens.")
    temperature: float = Field(0.0, ge=0, le=2, description="0: greedy decoding, deterministic.")
    seed: int = Field(0, ge=0, lt=2**31, description="Sampling seed (temperature > 0).")


def _metric_items(value: Any) -> Any:
    from foundryctl.evaluation.metrics import parse_metrics

    return parse_metrics(value)


def _gate_conditions(value: list[str]) -> list[str]:
    from foundryctl.evaluation.gate import parse_condition

    for text in value:
        parse_condition(text)  # ValueError names what is wrong
    return [" ".join(text.split()) for text in value]


class EvaluationSpec(Spec):
    kind: Literal["Evaluation"]
    project: Annotated[str, Ref("Project", containment=True),
                       Field(description="Name of the Project the evaluation runs in.")]
    target: EvaluationTarget
    data: Annotated[str, Ref("Dataset"), Field(description=(
        "A Dataset: chat conversations whose last assistant turn is the reference answer, or "
        "labelled texts for a text-classification model."))]
    split: Literal["validation", "training"] | None = Field(None, description=(
        "Which examples of the Dataset: its validation data (held out from training) or its "
        "training file. Default: validation when the Dataset has some, else the training file."))
    metrics: Annotated[list[Any], AfterValidator(_metric_items), Field(min_length=1, description=(
        "Metric names, or mappings with settings ({name: regex_match, pattern: ...}); see docs/evaluation.md."))]
    baseline: Baseline = Field(default_factory=Baseline)
    gate: Annotated[list[str], AfterValidator(_gate_conditions), Field(description=(
        "Conditions the results must meet, e.g. `rouge_l >= 0.3`, `f1_macro >= baseline + 0.02`."))] = []
    generation: Generation = Field(default_factory=Generation)
    max_examples: int | None = Field(None, ge=1, le=100_000, description=(
        "Score only the first N examples (in file order)."))
    description: str = ""


class Evaluation(Kind):
    name = "Evaluation"
    spec = EvaluationSpec
    summary = ("A model scored on a dataset with deterministic metrics (and an optional LLM judge); "
               "its gate decides whether a Deployment may swap to a new model.")
    progress_attributes = frozenset({"status"})

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        return inside_project(decl.spec.project, manifest)  # type: ignore[attr-defined]

    @classmethod
    def implicit_dependencies(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        # A judge that is a Deployment of this manifest answers before the evaluation runs.
        return [a for a in (f"Deployment.{d}" for d in _judge_deployments(decl.spec)) if a in manifest.resources]

    @classmethod
    def attributes(cls, spec: Spec) -> dict[str, Any]:
        attributes = super().attributes(spec)
        attributes["metrics"] = [m.model_dump(mode="json", by_alias=True, exclude_none=True)
                                 for m in spec.metrics]  # type: ignore[attr-defined]
        return attributes

    @classmethod
    def desired_attributes(cls, decl: ResourceDecl) -> dict[str, Any]:
        spec: EvaluationSpec = decl.spec  # type: ignore[assignment]
        attributes = cls.attributes(spec)
        attributes["task"] = _task(decl)
        dataset = _decl(decl, f"Dataset.{spec.data}")
        if dataset is not None:
            from foundryctl.kinds.dataset import Dataset

            data = Dataset.desired_attributes(dataset)
            split = spec.split or ("validation" if data.get("validation") else "training")
            attributes["split"] = split
            # The file itself, for backends that read it here (Azure has no in-process model).
            validation = data.get("validation") or {}
            attributes["data_file"] = {"path": validation["path"]} if split == "validation" and "path" in validation \
                else {"path": data["path"], **({"holdout": [validation["split"], validation["seed"]]}
                                               if split == "validation" else {})}
            attributes["data_version"] = _digest({
                "version": data.get("version"), "validation": data.get("validation"),
                "validation_version": data.get("validation_version")} if split == "validation"
                else {"version": data.get("version")})
        else:
            attributes["data_version"] = None
        attributes["target_version"] = _target_version(decl)
        if spec.target.checkpoint is None:
            attributes["target"].pop("checkpoint", None)
        else:
            attributes["target"]["resolved"] = None  # filled in by `resolve`, or by apply
        attributes["serving_baseline"] = None  # the served model's identity, filled in by `resolve`
        # The deployments whose promotion this gate decides: they refuse a failed candidate. A gate
        # no deployment names is a check: its failure is an error of the evaluation itself.
        manifest = decl.manifest
        attributes["gated_by"] = sorted(
            manifest.resources[a].name for a in manifest.addresses_of_kind("Deployment")
            if decl.address in manifest.resources[a].spec.promote_when) if manifest is not None else []  # type: ignore[attr-defined]
        # Completed: results stand (and a check's gate passes). An evaluation interrupted midway
        # has none, and a check whose gate failed reads GateFailed: both plan another apply.
        attributes["status"] = COMPLETED
        return attributes

    @classmethod
    def resolve(cls, decl: ResourceDecl, attributes: dict[str, Any], observed: Mapping[str, Observed | None],
                errors: list[Diagnostic]) -> dict[str, Any]:
        out = dict(attributes)
        serving = (attributes.get("baseline") or {}).get("serving")
        if serving:
            seen = observed.get(f"Deployment.{serving}")
            model = served_model(seen.attributes) if seen is not None else None
            # Once the target itself is served (promoted), it is no baseline of its own.
            out["serving_baseline"] = None if serves_target(model, attributes) else model
        target = attributes.get("target") or {}
        if target.get("checkpoint"):
            from foundryctl.kinds.checkpoint import SelectorError
            from foundryctl.kinds.finetune_job import trained_checkpoint

            try:
                chosen = trained_checkpoint(target["checkpoint"], target["job"], attributes.get("target_version"),
                                            observed)
            except SelectorError as exc:
                errors.append(Diagnostic.error(
                    str(exc), decl.position_of(("target", "checkpoint")), decl.address,
                    code="no-such-checkpoint", hint="pick one of the existing checkpoints, or `last`"))
            else:
                if chosen is not None:
                    out["target"] = {**target, "resolved": chosen}
        return out

    @classmethod
    def describe_changes(cls, before: dict[str, Any] | None, after: dict[str, Any],
                         decl: ResourceDecl | None = None) -> list[str]:
        what = describe_target(after)
        if before is None:
            return [f"scores {what} on {_examples(after)}"]
        changed = [k for k in RUN_IDENTITY if before.get(k) != after.get(k)]
        notes: list[str] = []
        if before.get("status") == GATE_FAILED and not changed:
            notes.append("its gate failed on the stored results: apply reports it again until the model or "
                         "the gate changes")
        elif before.get("status") != COMPLETED:
            notes.append(f"the last run did not finish ({before.get('status')}); runs again")
        elif changed:
            reasons = {"target_version": "the target's model changed", "data_version": "the data changed",
                       "metrics": "the metrics changed", "serving_baseline": "the serving baseline changed",
                       "target": "the target changed", "split": "the split changed",
                       "generation": "generation settings changed", "baseline": "the baselines changed",
                       "max_examples": "max_examples changed", "data": "the dataset changed"}
            notes.append(f"runs again ({', '.join(dict.fromkeys(reasons[k] for k in changed))}): scores {what}")
        elif before.get("gate") != after.get("gate"):
            notes.append("gate changed: judged again on the stored results (no re-run)")
        return notes

    @classmethod
    def check(cls, decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
        spec: EvaluationSpec = decl.spec  # type: ignore[assignment]
        out: list[Diagnostic] = []
        task = _task(decl)
        from foundryctl.evaluation.gate import parse_condition
        from foundryctl.evaluation.metrics import check_metrics

        for message in check_metrics(spec.metrics, task):
            out.append(Diagnostic.error(message, decl.position_of(("metrics",)), decl.address,
                                        code="metric-unavailable"))
        computed = {m.name for m in spec.metrics}
        for i, text in enumerate(spec.gate):
            condition = parse_condition(text)
            missing = [m for m in condition.metrics_needed if not _computed(m, computed)]
            if missing:
                out.append(Diagnostic.error(
                    f"gate {text!r} needs metric {missing[0]!r}, which `metrics` does not compute",
                    decl.position_of(("gate", i)), decl.address, code="gate-metric-missing",
                    hint=f"add {missing[0]} to metrics"))
            for name in condition.baseline_needed:
                if name not in _baselines(spec):
                    out.append(Diagnostic.error(
                        f"gate {text!r} compares with baseline{'.' + name if name else ''}, which `baseline` does "
                        "not declare", decl.position_of(("gate", i)), decl.address, code="gate-baseline-missing",
                        hint="declare baseline: {base: true} and/or {serving: DEPLOYMENT}"))
        dataset = manifest.resources.get(f"Dataset.{spec.data}")
        if dataset is not None and dataset.spec.project != spec.project:  # type: ignore[attr-defined]
            out.append(Diagnostic.error(
                f"Dataset {spec.data!r} is in project {dataset.spec.project!r}, not {spec.project!r}",  # type: ignore[attr-defined]
                decl.position_of(("data",)), decl.address, code="cross-project"))
        if dataset is not None and spec.split == "validation" and dataset.spec.validation is None:  # type: ignore[attr-defined]
            out.append(Diagnostic.error(
                f"Dataset {spec.data!r} has no validation data", decl.position_of(("split",)), decl.address,
                code="no-validation-data", hint="leave out `split` (the training file), or give the Dataset "
                                                "`validation: {split: 0.1}`"))
        job = manifest.resources.get(f"FineTuneJob.{spec.target.job}") if spec.target.job else None
        if job is not None and job.spec.project != spec.project:  # type: ignore[attr-defined]
            out.append(Diagnostic.error(
                f"FineTuneJob {spec.target.job!r} runs in project {job.spec.project!r}, not {spec.project!r}",  # type: ignore[attr-defined]
                decl.position_of(("target", "job")), decl.address, code="cross-project"))
        if dataset is not None and job is not None and dataset.spec.task != job.spec.task:  # type: ignore[attr-defined]
            out.append(Diagnostic.error(
                f"Dataset {spec.data!r} holds {dataset.spec.task} data but FineTuneJob {spec.target.job!r} "  # type: ignore[attr-defined]
                f"is a {job.spec.task} model", decl.position_of(("data",)), decl.address,  # type: ignore[attr-defined]
                code="task-mismatch"))
        if spec.baseline.base and spec.target.job is None:
            out.append(Diagnostic.error(
                "baseline.base scores the target job's base model: the target is not a FineTuneJob",
                decl.position_of(("baseline", "base")), decl.address, code="gate-baseline-missing",
                hint="evaluate the base model as its own Evaluation with target: {base_model: NAME}"))
        if spec.baseline.serving and f"Deployment.{spec.baseline.serving}" not in manifest.resources:
            out.append(Diagnostic.error(
                f"baseline.serving names Deployment {spec.baseline.serving!r}, which the manifest does not declare",
                decl.position_of(("baseline", "serving")), decl.address, code="unknown-reference"))
        for i, metric in enumerate(spec.metrics):
            judge = getattr(metric, "judge", None)
            if judge is None or judge.deployment is None:
                continue
            where = decl.position_of(("metrics", i, "judge", "deployment"))
            judge_decl = manifest.resources.get(f"Deployment.{judge.deployment}")
            if judge_decl is None:
                out.append(Diagnostic.error(
                    f"the judge names Deployment {judge.deployment!r}, which the manifest does not declare",
                    where, decl.address, code="unknown-reference",
                    hint="declare it, or give the judge `endpoint: URL` and `key_env` for one outside the manifest"))
            elif judge_decl.spec.project != spec.project:  # type: ignore[attr-defined]
                out.append(Diagnostic.error(
                    f"the judge Deployment {judge.deployment!r} is in project {judge_decl.spec.project!r}, "  # type: ignore[attr-defined]
                    f"not {spec.project!r}", where, decl.address, code="cross-project"))
            elif decl.address in judge_decl.spec.promote_when:  # type: ignore[attr-defined]
                out.append(Diagnostic.error(
                    f"Deployment {judge.deployment!r} cannot judge the evaluation that gates its own promotion",
                    where, decl.address, code="judge-is-gated",
                    hint="judge with another deployment (a stronger model), or an external endpoint"))
        if manifest.backend.type == "azure" and spec.target.deployment is None:
            out.append(Diagnostic.error(
                "on the azure backend an Evaluation scores a deployed endpoint: Azure runs no inference on a "
                "fine-tuned model that is not deployed", decl.position_of(("target",)), decl.address,
                code="evaluation-needs-endpoint", hint="target: {deployment: NAME}"))
        if manifest.backend.type == "azure" and (spec.baseline.base or any(
                m.name == "perplexity" for m in spec.metrics)):
            out.append(Diagnostic.error(
                "perplexity and baseline.base need the model's weights: local backend only",
                decl.position_of(("metrics",)), decl.address, code="metric-unavailable"))
        return out


def _judge_deployments(spec: Any) -> list[str]:
    return [m.judge.deployment for m in spec.metrics if getattr(m, "judge", None) is not None
            and m.judge.deployment is not None]


def served_model(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Deployment's model as an identity: which job run (and checkpoint) or registered version."""
    model = attributes.get("model") or {}
    if not model:
        return None
    return {k: model.get(k) for k in ("job", "run", "name", "version") if model.get(k) is not None} | (
        {"checkpoint": model.get("resolved") or model.get("checkpoint")}
        if model.get("checkpoint") not in (None, "last") else {})


def serves_target(model: Mapping[str, Any] | None, attributes: Mapping[str, Any]) -> bool:
    """Whether a deployment serving `model` (a `served_model`) serves the evaluation's target."""
    target = attributes.get("target") or {}
    if not model or not target.get("job"):
        return False
    checkpoint = target.get("resolved") or target.get("checkpoint")
    return (model.get("job"), model.get("run"), model.get("checkpoint") or "last") == (
        target["job"], attributes.get("target_version"), checkpoint or "last")


def run_key(attributes: Mapping[str, Any]) -> str:
    """The digest of what a run scores: equal keys, equal results. A judge counts by what its
    grades depend on (endpoint, model, prompt and its version, scale), not by its key's variable
    or how many requests it runs at once."""
    identity = {k: attributes.get(k) for k in RUN_IDENTITY}
    identity["metrics"] = [
        {**m, "judge": {k: v for k, v in m["judge"].items() if k not in ("key_env", "concurrency", "timeout")}}
        if isinstance(m, dict) and isinstance(m.get("judge"), dict) else m
        for m in attributes.get("metrics") or []]
    return _digest(identity)


def describe_target(attributes: Mapping[str, Any]) -> str:
    target = attributes.get("target") or {}
    if target.get("job"):
        checkpoint = target.get("resolved") or target.get("checkpoint")
        run = attributes.get("target_version")
        return f"FineTuneJob.{target['job']}" + (f" run {run}" if run else "") + (
            f" @{checkpoint}" if checkpoint and checkpoint != "last" else "")
    if target.get("deployment"):
        return f"Deployment.{target['deployment']}'s endpoint"
    return f"base model {target.get('base_model')}"


def _examples(attributes: Mapping[str, Any]) -> str:
    part = "validation data" if attributes.get("split") == "validation" else "training file"
    limit = attributes.get("max_examples")
    return f"Dataset.{attributes.get('data')} ({part}{f', first {limit}' if limit else ''})"


def _computed(metric: str, computed: set[str]) -> bool:
    from foundryctl.evaluation.metrics import provided_by

    return any(provided_by(name)(metric) for name in computed)


def _baselines(spec: EvaluationSpec) -> set[str]:
    names = ({"base"} if spec.baseline.base else set()) | ({"serving"} if spec.baseline.serving else set())
    return names | ({""} if names else set())


def _task(decl: ResourceDecl) -> str:
    spec: EvaluationSpec = decl.spec  # type: ignore[assignment]
    dataset = _decl(decl, f"Dataset.{spec.data}")
    return dataset.spec.task if dataset is not None else "chat_completion"  # type: ignore[attr-defined]


def _decl(decl: ResourceDecl, address: str) -> ResourceDecl | None:
    manifest = decl.manifest
    return manifest.resources.get(address) if manifest is not None else None


def _target_version(decl: ResourceDecl) -> str | None:
    spec: EvaluationSpec = decl.spec  # type: ignore[assignment]
    if spec.target.job is not None:
        job = _decl(decl, f"FineTuneJob.{spec.target.job}")
        if job is None:
            return None
        from foundryctl.kinds.finetune_job import FineTuneJob, training_run

        return training_run(FineTuneJob.desired_attributes(job))
    if spec.target.deployment is not None:
        deployment = _decl(decl, f"Deployment.{spec.target.deployment}")
        if deployment is None:
            return None
        from foundryctl.kinds.deployment import Deployment

        return _digest(served_model(Deployment.desired_attributes(deployment)))
    return spec.target.base_model


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]
