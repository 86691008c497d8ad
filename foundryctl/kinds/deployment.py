"""Deployment: a model served as an OpenAI-compatible endpoint with content filtering.

The model is a FineTuneJob's output or a registered model version. Changing the model, the
filter or the keys is done in place with no downtime; a replaced FineTuneJob moves its
deployments to the new model before the old one is removed. On Azure this is a serverless
endpoint; on the local backend, a server process on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from foundryctl.errors import Diagnostic
from foundryctl.kinds.base import ADDRESS_NAME, Kind, Ref, Spec, name_rule
from foundryctl.kinds.checkpoint import GRAMMAR, parse_selector
from foundryctl.kinds.project import inside_project

if TYPE_CHECKING:
    from foundryctl.backends.base import Observed
    from foundryctl.manifest.model import Manifest, ResourceDecl

# Azure serverless endpoint names: 3-32 characters, letters, digits and '-', starting with a letter.
ENDPOINT_NAME = name_rule(r"^[A-Za-z][A-Za-z0-9-]{2,31}$",
                          "use 3-32 letters, digits or '-', starting with a letter (Azure endpoint names)")
LEVEL = Literal["low", "medium", "high"]
CATEGORY = Literal["hate", "sexual", "violence", "self_harm"]
RUNNING = "Running"


def _normal_selector(text: str | None) -> str | None:
    """The selector as foundryctl writes it (`best(min:valid_loss)` -> `best(valid_loss)`), so
    a respelling is not a change."""
    return None if text is None else str(parse_selector(text))


class ModelSource(BaseModel):
    """What is served: a FineTuneJob's model (`job`, optionally one of its `checkpoint`s) or a
    registered model (`name` + `version`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: Annotated[str | None, Ref("FineTuneJob"), Field(description=(
        "Name of a FineTuneJob: its model, following the job when it is replaced."))] = None
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$",
                             description="Registered model name (with `version`).")
    version: int | None = Field(None, ge=1, description="Registered model version.")
    checkpoint: Annotated[str | None, AfterValidator(_normal_selector), Field(description=(
        f"With `job`: which checkpoint of the job to serve instead of its final model: {GRAMMAR}. "
        "Resolved at plan time from the job's metrics; no retraining."))] = None

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if self.job is not None and (self.name is not None or self.version is not None):
            raise ValueError("give either `job` or `name` and `version`, not both")
        if self.job is None and (self.name is None or self.version is None):
            raise ValueError("give `job: FINETUNE_JOB_NAME`, or a registered model's `name` and `version`")
        if self.checkpoint is not None and self.job is None:
            raise ValueError("`checkpoint` picks a checkpoint of a FineTuneJob: give it with `job`")
        return self


class ContentFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Filter prompts and completions (Azure's default: on).")
    threshold: LEVEL = Field("medium", description="Block content of this severity or above.")
    categories: dict[CATEGORY, LEVEL | Literal["off"]] = Field(default_factory=dict, description=(
        "Per-category thresholds overriding `threshold`; `off` lets a category through."))
    classifier: Literal["offline", "azure"] = Field("offline", description=(
        "offline: the built-in rules (no network); azure: Azure AI Content Safety."))
    azure_endpoint: str | None = Field(None, pattern=r"^https://", description=(
        "Azure AI Content Safety endpoint (classifier: azure)."))
    azure_key_env: str = Field("CONTENT_SAFETY_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description=(
        "Environment variable holding the Content Safety key (never the key itself)."))

    @model_validator(mode="after")
    def _azure_needs_endpoint(self) -> ContentFilter:
        if self.classifier == "azure" and not self.azure_endpoint:
            raise ValueError("classifier: azure needs azure_endpoint (https://NAME.cognitiveservices.azure.com)")
        return self


class Serving(BaseModel):
    """Local serving settings (ignored by Azure's serverless endpoints)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int | None = Field(None, ge=1024, le=65535, description="Port on 127.0.0.1; default: a free one, kept.")
    max_batch_size: int = Field(16, ge=1, le=256, description="Requests decoded together.")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class DeploymentSpec(Spec):
    kind: Literal["Deployment"]
    name: Annotated[str, ENDPOINT_NAME, Field(description="Endpoint name.")]
    project: Annotated[str, Ref("Project", containment=True),
                       Field(description="Name of the Project the endpoint lives in.")]
    model: ModelSource
    content_filter: ContentFilter = Field(default_factory=ContentFilter)
    auth_mode: Literal["key"] = Field("key", description="Two keys, sent as `Authorization: Bearer` or `api-key`.")
    serving: Serving = Field(default_factory=Serving)
    promote_when: list[Annotated[str, Field(pattern=rf"^Evaluation\.{ADDRESS_NAME}$")]] = Field(
        default_factory=list, description=(
            "Evaluations (`Evaluation.NAME`) whose gates a new model must pass before it serves: "
            "apply trains, evaluates, and swaps only if every gate passes; otherwise the current "
            "model keeps serving and apply fails."))
    description: str = ""


class Deployment(Kind):
    name = "Deployment"
    spec = DeploymentSpec
    summary = ("An OpenAI-compatible endpoint serving a fine-tuned model, with content filtering and keys; "
               "model and filter changes are made in place.")
    force_new = frozenset({"project"})
    needs_role = True

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        return inside_project(decl.spec.project, manifest)  # type: ignore[attr-defined]

    @classmethod
    def implicit_dependencies(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        # A registered model named in the manifest's own jobs comes from them: deploy after the
        # job, and delete the deployment before the job (and its model) goes.
        spec: DeploymentSpec = decl.spec  # type: ignore[assignment]
        gates = [a for a in spec.promote_when if a in manifest.resources]  # judged before the swap
        evaluation = _selector_evaluation(spec)
        if evaluation is not None and evaluation in manifest.resources:
            return [evaluation, *gates]  # its results pick the checkpoint
        if spec.model.name is None:
            return gates
        return gates + [a for a in manifest.addresses_of_kind("FineTuneJob")
                if (job := manifest.resources[a].spec).project == spec.project  # type: ignore[attr-defined]
                and (job.output_model or job.name) == spec.model.name]  # type: ignore[attr-defined]

    @classmethod
    def desired_attributes(cls, decl: ResourceDecl) -> dict[str, Any]:
        spec: DeploymentSpec = decl.spec  # type: ignore[assignment]
        attributes = cls.attributes(spec)
        if not spec.promote_when:
            del attributes["promote_when"]  # ungated, as before gates existed
        if spec.model.checkpoint is None:
            del attributes["model"]["checkpoint"]  # the final model, as before checkpoints existed
        else:
            # Which checkpoint the selector picks: filled in by `resolve` from the job's
            # metrics, or by apply once a run that is still to train has finished.
            attributes["model"]["resolved"] = None
        if spec.model.job is not None:
            # Which training run the job is: a replaced job moves the deployment to its new model.
            attributes["model"]["run"] = _job_run(decl, spec.model.job)
        attributes["status"] = RUNNING  # a server that died is drift apply repairs
        return attributes

    @classmethod
    def resolve(cls, decl: ResourceDecl, attributes: dict[str, Any], observed: Mapping[str, Observed | None],
                errors: list[Diagnostic]) -> dict[str, Any]:
        model = attributes.get("model") or {}
        if not model.get("checkpoint"):
            return attributes
        from foundryctl.kinds.checkpoint import SelectorError, observed_evaluation_results
        from foundryctl.kinds.finetune_job import trained_checkpoint

        try:
            chosen = trained_checkpoint(model["checkpoint"], model["job"], model["run"], observed,
                                        observed_evaluation_results(observed))
        except SelectorError as exc:
            errors.append(Diagnostic.error(
                str(exc), decl.position_of(("model", "checkpoint")), decl.address, code="no-such-checkpoint",
                hint="pick one of the existing checkpoints, or `last` for the final model"))
            return attributes
        if chosen is None:
            return attributes  # the run is still to train: apply resolves it once it has
        return {**attributes, "model": {**model, "resolved": chosen}}

    @classmethod
    def describe_changes(cls, before: dict[str, Any] | None, after: dict[str, Any],
                         decl: ResourceDecl | None = None) -> list[str]:
        if before is None:
            return _azure_rate_note(decl)
        notes = []
        if before.get("status") != after.get("status"):
            notes.append(f"the endpoint is {str(before.get('status')).lower()}; apply restarts it")
        old, new = before.get("model") or {}, after.get("model") or {}
        if _served(old) != _served(new) and old.get("run") == new.get("run"):
            notes.append(f"model {_served(old)} -> {_served(new)} (no retraining)")
        if old != new and old.get("run") != new.get("run"):
            if old.get("job") and old.get("job") == new.get("job"):
                notes.append(f"moves to the new model of FineTuneJob.{new['job']} once it is trained "
                             "(no downtime); the old model is removed afterwards")
                if new.get("checkpoint") and new["checkpoint"] != "last":
                    notes.append(f"serves checkpoint {new['checkpoint']} of the new run, picked from its "
                                 "checkpoints once it is trained (the selector keeps it from rotation)")
            else:
                notes.append("switches model in place: the new one serves once it is loaded and healthy")
        if before.get("content_filter") != after.get("content_filter"):
            enabled = (after.get("content_filter") or {}).get("enabled", True)
            notes.append("content filter " + ("settings change" if enabled else "turned OFF") + " (in place)")
        return notes

    @classmethod
    def follow_notes(cls, decl: ResourceDecl, changes: dict[str, Any]) -> list[str]:
        from foundryctl.kinds.finetune_job import IN_PROGRESS, STALLED

        job = decl.spec.model.job  # type: ignore[attr-defined]
        change = changes.get(f"FineTuneJob.{job}") if job else None
        status = (change.before or {}).get("status") if change is not None else None
        if status in IN_PROGRESS or status in STALLED:
            return ["training in progress; the deployment moves when it finishes (the current model "
                    "serves until then)"]
        return []

    @classmethod
    def admit(cls, before: dict[str, Any] | None, after: dict[str, Any],
              outputs_of: Callable[[str], dict[str, Any] | None]) -> None:
        from foundryctl.kinds.gates import admit_promotion

        admit_promotion(before, after, outputs_of)

    @classmethod
    def plan_gates(cls, decl: ResourceDecl, before: dict[str, Any] | None, after: dict[str, Any],
                   observed: Mapping[str, Observed | None]) -> list[dict[str, Any]]:
        from foundryctl.kinds.gates import gate_views

        return gate_views(before, after, observed)

    @classmethod
    def check(cls, decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
        spec: DeploymentSpec = decl.spec  # type: ignore[assignment]
        out: list[Diagnostic] = []
        if spec.model.job is not None:
            job = manifest.resources.get(f"FineTuneJob.{spec.model.job}")
            if job is not None:
                from foundryctl.kinds.finetune_job import region_checks

                out.extend(region_checks(decl, manifest, spec.project, job.spec.base_model,  # type: ignore[attr-defined]
                                         "deployed", "deploy_regions", ("model", "job")))
            if job is not None and job.spec.foundry_project is not None:  # type: ignore[attr-defined]
                out.append(Diagnostic.error(
                    f"FineTuneJob {spec.model.job!r} trains in FoundryProject {job.spec.foundry_project!r}; "  # type: ignore[attr-defined]
                    "a Deployment serves models of a hub project, and deployments in Foundry projects "
                    "are not supported yet", decl.position_of(("model", "job")), decl.address,
                    code="foundry-deployment-unsupported",
                    hint="deploy the fine-tuned model in the Foundry portal for now (its name is in the job's "
                         "outputs: foundryctl jobs show)"))
            elif job is not None and job.spec.project != spec.project:  # type: ignore[attr-defined]
                out.append(Diagnostic.error(
                    f"FineTuneJob {spec.model.job!r} runs in project {job.spec.project!r}, "  # type: ignore[attr-defined]
                    f"not {spec.project!r}", decl.position_of(("model", "job")), decl.address,
                    code="cross-project", hint="a deployment serves models of its own project"))
        out.extend(_checkpoint_checks(decl, manifest))
        from foundryctl.kinds.gates import promote_when_checks

        out.extend(promote_when_checks(decl, manifest))
        out.extend(_azure_filter_checks(decl, manifest))
        from foundryctl.kinds.azure_limits import deployment_checks

        out.extend(deployment_checks(decl, manifest))
        ports: dict[int, str] = {}
        for address in manifest.addresses_of_kind("Deployment"):
            other = manifest.resources[address].spec.serving.port  # type: ignore[attr-defined]
            if other is not None:
                ports.setdefault(other, address)
        port = spec.serving.port
        if port is not None and ports.get(port) not in (None, decl.address):
            out.append(Diagnostic.error(
                f"port {port} is also used by {ports[port]}", decl.position_of(("serving", "port")),
                decl.address, code="port-conflict", hint="give each deployment its own port, or leave it out"))
        return out


def _azure_rate_note(decl: ResourceDecl | None) -> list[str]:
    """A new serverless endpoint's documented rate limit, so nobody load-tests into a 429."""
    manifest = decl.manifest if decl is not None else None
    if manifest is None or manifest.backend.type != "azure":
        return []
    from foundryctl import catalog

    limits = catalog.azure_limits()
    return [f"Azure limits a serverless deployment to {limits.tokens_per_minute_per_deployment:,} tokens and "
            f"{limits.requests_per_minute_per_deployment:,} requests per minute"]


def _azure_filter_checks(decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
    """Azure's serverless endpoints have one content-safety switch: say so when the manifest
    asks for more, so nobody believes a stricter threshold is enforced there."""
    if manifest.backend.type != "azure":
        return []
    spec: DeploymentSpec = decl.spec  # type: ignore[assignment]
    wanted, default = spec.content_filter, ContentFilter()
    local_only = [name for name in ("threshold", "categories", "classifier", "azure_endpoint")
                  if getattr(wanted, name) != getattr(default, name)]
    if not local_only:
        return []
    return [Diagnostic.warning(
        f"content_filter {', '.join(local_only)} {'applies' if len(local_only) == 1 else 'apply'} to the "
        "local backend only: a serverless endpoint "
        "on Azure has Azure AI Content Safety on (its default filter) or off, nothing in between",
        decl.position_of(("content_filter",)), decl.address, code="local-only-setting")]


def _served(model: dict[str, Any]) -> str:
    """What a deployment serves, in plan notes: `xbox-agent@epoch-2`, `xbox-agent` (final model)."""
    source = model.get("job") or f"{model.get('name')}:{model.get('version')}"
    checkpoint = model.get("resolved") or model.get("checkpoint")
    if checkpoint and checkpoint != "last":
        return f"{source}@{checkpoint}" + ("" if model.get("resolved") else " (resolved after training)")
    return source


def _selector_evaluation(spec: DeploymentSpec) -> str | None:
    if spec.model.checkpoint is None:
        return None
    selector = parse_selector(spec.model.checkpoint)
    return f"Evaluation.{selector.evaluation}" if selector.evaluation else None


def _checkpoint_checks(decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
    """What the manifest alone shows about `model.checkpoint`: an epoch the job never reaches,
    an evaluation that is not declared, a backend that cannot serve checkpoints."""
    spec: DeploymentSpec = decl.spec  # type: ignore[assignment]
    if spec.model.checkpoint is None or spec.model.job is None:
        return []
    selector = parse_selector(spec.model.checkpoint)
    where = decl.position_of(("model", "checkpoint"))
    if manifest.backend.type == "azure" and selector.kind != "last":
        return [Diagnostic.error(
            f"checkpoint {selector} cannot be deployed on the azure backend: a serverless fine-tune of "
            f"{_base_model(manifest, spec.model.job) or 'this model'} registers only its final model, and a "
            "serverless endpoint deploys a registered model (Azure keeps intermediate checkpoints for Azure "
            "OpenAI fine-tunes only)", where, decl.address, code="checkpoint-unsupported",
            hint="remove `checkpoint` (or write `checkpoint: last`), or set epochs on the FineTuneJob to the "
                 "epoch you want and retrain")]
    out: list[Diagnostic] = []
    job = manifest.resources.get(f"FineTuneJob.{spec.model.job}")
    if job is not None and selector.kind != "last" and job.spec.hyperparameters.full_finetune:  # type: ignore[attr-defined]
        out.append(Diagnostic.error(
            f"FineTuneJob {spec.model.job!r} is a full fine-tune: only its final model can be deployed "
            "(checkpoints of a LoRA fine-tune can)", where, decl.address, code="checkpoint-unsupported",
            hint="leave out `checkpoint`, or train with LoRA (full_finetune: false)"))
    if job is not None and selector.kind == "epoch":
        epochs = job.spec.hyperparameters.epochs  # type: ignore[attr-defined]
        if selector.number > epochs:  # type: ignore[operator]
            out.append(Diagnostic.error(
                f"FineTuneJob {spec.model.job!r} trains {epochs} epoch(s), so it has no checkpoint {selector}",
                where, decl.address, code="no-such-checkpoint",
                hint=f"pick epoch-1 to epoch-{epochs}, or best(valid_loss)"))
    evaluation = _selector_evaluation(spec)
    if evaluation is not None and evaluation not in manifest.resources:
        out.append(Diagnostic.error(
            f"checkpoint {selector} names {evaluation}, which is not declared in the manifest", where,
            decl.address, code="unknown-reference", hint="declare the Evaluation, or pick by the job's own "
                                                          "metrics, e.g. best(valid_loss)"))
    return out


def _base_model(manifest: Manifest, job: str) -> str | None:
    decl = manifest.resources.get(f"FineTuneJob.{job}")
    return decl.spec.base_model if decl is not None else None  # type: ignore[attr-defined]


def _job_run(decl: ResourceDecl, job: str) -> str | None:
    from foundryctl.kinds.finetune_job import FineTuneJob, training_run

    manifest = decl.manifest
    job_decl = manifest.resources.get(f"FineTuneJob.{job}") if manifest is not None else None
    if job_decl is None:
        return None
    return training_run(FineTuneJob.desired_attributes(job_decl))
