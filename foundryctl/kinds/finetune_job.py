"""FineTuneJob: a training run that turns a base model and a dataset into a registered model.

A job is immutable: any change to what it trains (base model, data versions,
hyperparameters, seed) is a new run, so the plan replaces it, creating the new one first
while the old model keeps serving. Hyperparameters use Azure's names and ranges; the
local runner's own settings sit beside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundryctl.errors import Diagnostic
from foundryctl.kinds.base import Kind, Ref, Spec
from foundryctl.kinds.project import inside_project

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest, ResourceDecl

# What the plan's duration estimate assumes, in trained tokens per second (SmolLM2-135M LoRA
# measured at about 200/s on a 2-core CPU; the GPU figure is a rough single-GPU guess).
ASSUMED_TOKENS_PER_SECOND = {"cpu": 200.0, "cuda": 20000.0}


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Azure's hyperparameters and ranges.
    epochs: int = Field(3, ge=1, le=10, description="Passes over the training data (Azure: 1-10).")
    batch_size: int = Field(4, ge=1, le=32, description="Examples per batch (Azure: 1-32).")
    learning_rate_multiplier: float = Field(1.0, gt=0, le=10, description=(
        "Scales the model's base learning rate from the catalog (Azure: 0-10)."))
    # The local runner's settings.
    full_finetune: bool = Field(False, description="Train every weight instead of a LoRA adapter.")
    lora_r: int = Field(8, ge=1, le=256, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, le=1024, description="LoRA scaling numerator (alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] | None = Field(None, min_length=1, description=(
        "Modules LoRA adapts; default: the catalog's for the model, else q_proj and v_proj."))
    max_seq_length: int | None = Field(None, ge=16, le=131072, description=(
        "Tokens per example; longer ones are truncated (default: min(context, 2048))."))
    gradient_accumulation_steps: int = Field(1, ge=1, le=64, description="Batches per optimizer step.")
    max_tokens_per_pass: int = Field(1024, ge=64, le=1_048_576, description=(
        "Padded tokens per forward pass: a larger batch is done in several passes of one step "
        "(same gradient, less memory)."))
    warmup_ratio: float = Field(0.1, ge=0, le=0.5, description="Share of steps spent warming up.")
    lr_scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate decay after warmup.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    merge_weights: bool = Field(False, description="Also write the base model with the adapter merged in.")
    # Direct preference optimization (a Foundry project's `method: dpo`).
    beta: float | None = Field(None, gt=0, le=10, description=(
        "method: dpo only: how far training may move from the base model (Azure's example: 0.1; "
        "default: Azure's own)."))


class FineTuneJobSpec(Spec):
    kind: Literal["FineTuneJob"]
    project: Annotated[str | None, Ref("Project", containment=True),
                       Field(description="Name of the (hub) Project the job runs in; or give `foundry_project`.")] = None
    foundry_project: Annotated[str | None, Ref("FoundryProject", containment=True), Field(description=(
        "Name of the FoundryProject the job runs in (Azure OpenAI fine-tuning of gpt-4.1 and the "
        "other models of the Foundry catalog); instead of `project`."))] = None
    base_model: str = Field(description="Catalog name, hf:ORG/NAME or path:DIR; in a Foundry project a "
                                        "Foundry model (gpt-4.1, gpt-4.1-mini, ...).")
    task: Literal["chat_completion", "text_classification"] = Field("chat_completion", description=(
        "chat_completion (conversations) or text_classification (a classification head on the "
        "base model, trained on a `task: text_classification` Dataset; local runner only)."))
    training_data: Annotated[str | None, Ref("Dataset"), Field(description=(
        "Name of a Dataset (hub projects; a Foundry job names `training_file`)."))] = None
    validation_data: Annotated[str | None, Ref("Dataset"), Field(description=(
        "Name of a Dataset to validate on; default: the training dataset's validation data."))] = None
    training_file: str | None = Field(None, min_length=1, description=(
        "Foundry project: the training JSONL file (relative to the manifest), uploaded through the "
        "files API: conversations for `method: supervised`, preference pairs for `method: dpo`."))
    validation_file: str | None = Field(None, min_length=1, description=(
        "Foundry project: a validation JSONL file in the same format."))
    training_type: Literal["Standard", "GlobalStandard", "Developer"] | None = Field(None, description=(
        "Foundry project (required there): Standard (trains in the account's region), GlobalStandard "
        "(any region, cheaper, no data residency) or Developer (cheapest, pre-emptible, no data residency)."))
    method: Literal["supervised", "dpo"] = Field("supervised", description=(
        "Foundry project: supervised fine-tuning or dpo (direct preference optimization, for the "
        "models the catalog lists with it)."))
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    runner: Literal["local", "azure"] | None = Field(None, description=(
        "Where training runs: local (this machine, local backend) or azure (Azure's serverless "
        "fine-tuning, azure backend); default: the backend's own."))
    output_model: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$", description=(
        "Name of the registered model; default: the job's name."))
    seed: int = Field(0, ge=0, lt=2**31, description="Seed of data order, initialisation and dropout.")
    description: str = ""

    @field_validator("base_model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from foundryctl import catalog
        from foundryctl.models import parse_base_model

        if catalog.find_foundry_model(value) is not None:
            return value.strip()  # a Foundry model; the job's checks say where it trains
        parse_base_model(value)  # raises ValueError with the catalog and a suggestion
        return value.strip()


class FineTuneJob(Kind):
    name = "FineTuneJob"
    spec = FineTuneJobSpec
    summary = ("A fine-tuning run (LoRA or full) that registers its result as a model; any change "
               "to what it trains is a new run.")
    force_new = frozenset({"project", "base_model", "task", "training_data", "validation_data",
                           "hyperparameters", "runner", "output_model", "seed", "training_version",
                           "validation_version", "labels", "foundry_project", "training_file",
                           "validation_file", "training_type", "method"})
    create_before_destroy = True  # the old model keeps serving until the new one exists
    progress_attributes = frozenset({"status"})
    needs_role = True

    @classmethod
    def implicit_dependencies(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        # Azure AI Foundry fine-tuning needs Microsoft.Network registered on the subscription.
        return [a for a in manifest.addresses_of_kind("ProviderRegistration")
                if manifest.resources[a].spec.namespace.lower() == "microsoft.network"]  # type: ignore[attr-defined]

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        if decl.spec.foundry_project is not None:  # type: ignore[attr-defined]
            from foundryctl.kinds.foundry import inside_foundry_project

            return inside_foundry_project(decl.spec.foundry_project, manifest)  # type: ignore[attr-defined]
        return inside_project(decl.spec.project, manifest) if decl.spec.project else []  # type: ignore[attr-defined]

    @classmethod
    def attributes(cls, spec: Spec) -> dict[str, Any]:
        attributes = super().attributes(spec)
        # Foundry-only fields stay out of a hub job's attributes while unset, so its run digest
        # (training_run) and its state are what they were before these fields existed.
        for key in FOUNDRY_ONLY:
            if attributes.get(key) is None or (key == "method" and not getattr(spec, "foundry_project", None)):
                attributes.pop(key, None)
        if attributes["hyperparameters"].get("beta") is None:
            attributes["hyperparameters"].pop("beta", None)
        for key in ("project", "training_data", "validation_data"):
            if attributes.get(key) is None and getattr(spec, "foundry_project", None):
                attributes.pop(key, None)
        return attributes

    @classmethod
    def desired_attributes(cls, decl: ResourceDecl) -> dict[str, Any]:
        spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
        if spec.foundry_project is not None:
            from foundryctl.kinds.foundry_finetune import foundry_attributes

            return foundry_attributes(decl, cls.attributes(spec))
        attributes = cls.attributes(spec)
        attributes["output_model"] = spec.output_model or spec.name
        attributes["runner"] = runner_of(spec, decl.manifest)
        # The data versions it trains on: new data is a new run.
        training = _dataset_attributes(decl, spec.training_data)
        attributes["training_version"] = training.get("version")
        if spec.task == "text_classification" and training.get("labels"):  # the outputs, in order
            attributes["labels"] = training["labels"]
        if spec.validation_data:
            attributes["validation_version"] = _dataset_attributes(decl, spec.validation_data).get("version")
        else:
            attributes["validation_version"] = (training.get("validation_version")
                                                or _split_of(training))
        attributes["status"] = "Completed"  # what apply drives it to (resuming if need be)
        return attributes

    @classmethod
    def describe_changes(cls, before: dict[str, Any] | None, after: dict[str, Any],
                         decl: ResourceDecl | None = None) -> list[str]:
        if before is not None and all(before.get(k) == after.get(k) for k in cls.force_new):
            if before.get("status") != after.get("status"):
                status = before.get("status")
                if status in STALLED:
                    return [STALLED[status]]
                if status in IN_PROGRESS:
                    return [f"training in progress ({str(status).lower()}); apply waits for it"]
                return [f"training is {str(status).lower()}; apply "
                        + ("resumes it from its last checkpoint" if status in
                           ("Interrupted", "Failed", "Canceled") else "waits for it")]
            return []
        return [estimate(decl)] if decl is not None else []

    @classmethod
    def pending(cls, attributes: dict[str, Any], outputs: dict[str, Any]) -> str | None:
        status = attributes.get("status")
        if status == "Completed":
            return None
        return "training " + (progress_summary(outputs) or str(status).lower())

    @classmethod
    def check(cls, decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
        from foundryctl.kinds.foundry_finetune import placement_checks

        placement = placement_checks(decl)
        if placement or decl.spec.foundry_project is not None:  # type: ignore[attr-defined]
            if placement:
                return placement
            from foundryctl.kinds.foundry_finetune import foundry_checks

            return foundry_checks(decl, manifest)
        spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
        out: list[Diagnostic] = []
        dataset = manifest.resources.get(f"Dataset.{spec.training_data}")
        if dataset is not None and dataset.spec.project != spec.project:  # type: ignore[attr-defined]
            out.append(Diagnostic.error(
                f"training_data {spec.training_data!r} is registered in project "
                f"{dataset.spec.project!r}, not {spec.project!r}", decl.position_of(("training_data",)),  # type: ignore[attr-defined]
                decl.address, code="cross-project",
                hint="a job can only read data assets of its own project"))
        out.extend(task_checks(decl, manifest))
        if manifest.check_files and dataset is not None and spec.task == "chat_completion":
            out.extend(_token_checks(decl, dataset))
        out.extend(region_checks(decl, manifest, spec.project, spec.base_model, "fine-tuned",
                                 "finetune_regions", ("base_model",)))
        out.extend(runner_checks(decl, manifest))
        from foundryctl.kinds.azure_limits import job_checks

        out.extend(job_checks(decl, manifest))
        out.extend(hyperparameter_checks(decl))
        return out


# Fields only a job in a FoundryProject has.
FOUNDRY_ONLY = ("foundry_project", "training_file", "validation_file", "training_type", "method")


# What Azure AI Foundry's serverless fine-tuning trains: chat completion only (Phi, Llama,
# Mistral and the other catalog models take conversational JSONL); a classification head is
# trained by the local runner alone.
AZURE_TASKS = ("chat_completion",)


def task_checks(decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
    """The task must be one the runner trains, and the datasets must be in its format."""
    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    out: list[Diagnostic] = []
    if runner_of(spec, manifest) == "azure" and spec.task not in AZURE_TASKS:
        out.append(Diagnostic.error(
            f"task: {spec.task} is not offered by Azure's serverless fine-tuning, which trains "
            f"{', '.join(AZURE_TASKS)} only (conversational JSONL) for every model it fine-tunes",
            decl.position_of(("task",)), decl.address, code="task-unavailable",
            hint="train text classification with the local backend, or recast the labels as "
                 "chat completions (the label as the assistant's answer)"))
    for field in ("training_data", "validation_data"):
        name = getattr(spec, field)
        dataset = manifest.resources.get(f"Dataset.{name}") if name else None
        if dataset is None:
            continue
        data_task = dataset.spec.task  # type: ignore[attr-defined]
        if data_task != spec.task:
            out.append(Diagnostic.error(
                f"{field} {name!r} is a {data_task} dataset, and this job's task is {spec.task}",
                decl.position_of((field,)), decl.address, code="task-mismatch",
                hint=f"set `task: {spec.task}` on Dataset.{name} (and give it data in that format)"
                     if spec.task == "text_classification" else f"set `task: {data_task}` on the job"))
    return out


IN_PROGRESS = ("Queued", "Running", "Finishing")  # both backends' job statuses on the way
# Azure job statuses that are neither progress nor an end: apply waits through them (up to the
# backend's job_wait_timeout), and the plan says what it waits for.
STALLED = {
    "Paused": "training is paused on Azure; apply waits for it to be resumed (Azure AI Foundry portal), "
              "up to the backend's job_wait_timeout",
    "NotResponding": "Azure reports the job as not responding; apply waits for it to recover, up to the "
                     "backend's job_wait_timeout (cancel it with destroy --target if it does not)",
    "Unknown": "Azure reports the job's status as Unknown; apply waits for a known one, up to the "
               "backend's job_wait_timeout",
}


def progress_summary(outputs: dict[str, Any]) -> str:
    """`running (epoch 1/3, step 20/60)` from a job's outputs, as far as they tell."""
    status = str(outputs.get("status") or "").lower()
    where = []
    if outputs.get("epoch") is not None and outputs.get("epochs"):
        where.append(f"epoch {outputs['epoch']}/{outputs['epochs']}")
    if outputs.get("step") is not None and outputs.get("total_steps"):
        where.append(f"step {outputs['step']}/{outputs['total_steps']}")
    return status + (f" ({', '.join(where)})" if where and status else "")


def default_runner(manifest: Manifest | None) -> str:
    """Each backend trains where it lives: the local backend here, the azure backend on Azure."""
    return "azure" if manifest is not None and manifest.backend.type == "azure" else "local"


def runner_of(spec: FineTuneJobSpec, manifest: Manifest | None) -> str:
    """Where the job trains: what it says, else its backend's own runner."""
    return spec.runner or default_runner(manifest)


def region_checks(decl: ResourceDecl, manifest: Manifest, project: str, base_model: str, verb: str,
                  field: str, path: tuple) -> list[Diagnostic]:
    """Whether Azure offers `verb` for the catalog model in the project's region: an error on
    the azure backend (before anything is created), a warning on the local backend, which
    runs it anyway but whose manifest Azure would refuse."""
    from foundryctl import catalog
    from foundryctl.kinds.project import project_location

    entry = catalog.find_base_model(base_model)
    allowed = getattr(entry, field) if entry else None
    location = project_location(project, manifest)
    if allowed is None or location is None or location in allowed:
        return []
    on_azure = manifest.backend.type == "azure"
    hub = manifest.resources[f"Project.{project}"].spec.hub  # type: ignore[attr-defined]
    message = (f"{entry.name} can be {verb} on Azure only in {', '.join(sorted(allowed))}, and project "  # type: ignore[union-attr]
               f"{project!r} is in {location} (the location of Hub.{hub})"
               + ("" if on_azure else ": the local backend runs it, Azure would refuse it"))
    hint = f"move the hub to one of those regions ({entry.regions_source})"  # type: ignore[union-attr]
    severity = Diagnostic.error if on_azure else Diagnostic.warning
    return [severity(message, decl.position_of(path), decl.address, code="region-unavailable", hint=hint)]


# Azure accepts a learning_rate_multiplier up to 10, but the catalog's base rates are already
# tuned fine-tuning rates: beyond these bounds a run tends to diverge (loss spikes, the model
# babbles) or barely moves, so validate says so while the value is still cheap to change.
USUAL_LEARNING_RATE_MULTIPLIER = (0.1, 4.0)


def hyperparameter_checks(decl: ResourceDecl) -> list[Diagnostic]:
    """Warnings, at the value, for hyperparameters Azure accepts but that rarely train well."""
    from foundryctl import catalog

    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    multiplier = spec.hyperparameters.learning_rate_multiplier
    low, high = USUAL_LEARNING_RATE_MULTIPLIER
    if low <= multiplier <= high:
        return []
    entry = catalog.find_base_model(spec.base_model)
    base = entry.learning_rate if entry is not None else 1e-4
    effect = ("is likely to diverge (the loss jumps, answers turn to noise)" if multiplier > high
              else "barely changes the model")
    return [Diagnostic.warning(
        f"learning_rate_multiplier {multiplier:g} gives a learning rate of {base * multiplier:.2g} "
        f"({multiplier:g} x the base {base:g} of {entry.name if entry else 'models outside the catalog'}), "
        f"which {effect}; Azure accepts 0-10, but {low:g}-{high:g} is the usual range",
        decl.position_of(("hyperparameters", "learning_rate_multiplier")), decl.address,
        code="unusual-hyperparameter",
        hint="start from 1.0 and change it by a factor of 2 or so when the loss curves call for it")]


def runner_checks(decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
    """The runner must be the backend's, the base model one Azure fine-tunes, and settings
    Azure has no knob for are pointed out instead of silently dropped."""
    from foundryctl import catalog

    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    backend = manifest.backend.type
    runner = runner_of(spec, manifest)
    if runner != default_runner(manifest):
        return [Diagnostic.error(
            f"runner: {runner} needs the {runner} backend, and this manifest uses the {backend} backend",
            decl.position_of(("runner",)), decl.address, code="runner-backend",
            hint="leave `runner` out: each backend trains where it lives")]
    if runner != "azure":
        return []
    out: list[Diagnostic] = []
    entry = catalog.find_base_model(spec.base_model)
    retirement = retirement_checks(decl, entry)
    out.extend(retirement)
    retired = any(d.code == "model-retired" for d in retirement)  # says more than "not offered"
    if not retired and (entry is None or entry.azure_model_id is None):
        offered = sorted(m.name for m in catalog.base_models().values()
                         if m.azure_model_id and not m.retired_by(catalog.today()))
        out.append(Diagnostic.error(
            f"{spec.base_model} is not offered for serverless fine-tuning on Azure",
            decl.position_of(("base_model",)), decl.address, code="model-unavailable",
            hint=f"use one of: {', '.join(offered)}"))
    defaults = Hyperparameters()
    ignored = [name for name in LOCAL_ONLY_HYPERPARAMETERS
               if getattr(spec.hyperparameters, name) != getattr(defaults, name)]
    if ignored:
        out.append(Diagnostic.warning(
            f"Azure's serverless fine-tuning has no setting for {', '.join(ignored)}: "
            f"{'it applies' if len(ignored) == 1 else 'they apply'} to the local runner only",
            decl.position_of(("hyperparameters", ignored[0])), decl.address,
            code="local-only-setting"))
    return out


def retirement_checks(decl: ResourceDecl, entry: Any) -> list[Diagnostic]:
    """On the azure backend: a model Azure has retired for serverless use is an error, one
    retiring within RETIREMENT_NOTICE_DAYS a warning (the job and its endpoint would stop)."""
    from foundryctl import catalog

    if entry is None or entry.retired is None:
        return []
    today = catalog.today()
    instead = f"use {entry.replacement}" if entry.replacement else "use a model Azure still serves"
    where = decl.position_of(("base_model",))
    if entry.retired_by(today):
        return [Diagnostic.error(
            f"{entry.name} was retired on Azure on {entry.retired.isoformat()}: Azure no longer fine-tunes "
            "or serves it", where, decl.address, code="model-retired",
            hint=f"{instead} (the local backend still trains {entry.name})")]
    days = (entry.retired - today).days
    if days <= catalog.RETIREMENT_NOTICE_DAYS:
        return [Diagnostic.warning(
            f"{entry.name} retires on Azure on {entry.retired.isoformat()} (in {days} day{'s' if days != 1 else ''}): "
            "its endpoints stop then", where, decl.address, code="model-retiring",
            hint=f"{instead} before then")]
    return []


# What the local runner reads and Azure's fine-tuning does not (it takes epochs, batch size
# and learning rate).
LOCAL_ONLY_HYPERPARAMETERS = ("full_finetune", "lora_r", "lora_alpha", "lora_dropout", "target_modules",
                              "max_seq_length", "gradient_accumulation_steps", "max_tokens_per_pass",
                              "warmup_ratio", "lr_scheduler", "weight_decay", "merge_weights")


def checkpoints_of(outputs: dict[str, Any]) -> list:
    """The job's checkpoints (CheckpointInfo) as its backend reports them in its outputs."""
    from foundryctl.kinds.checkpoint import checkpoint_infos

    return checkpoint_infos(outputs.get("checkpoints") or [])


def trained_checkpoint(selector: str, job: str, run: str | None, observed: Mapping[str, Any],
                       evaluations: Any = None) -> str | None:
    """The checkpoint `selector` picks among FineTuneJob `job`'s observed checkpoints, or None
    while `run` is not its completed training run (apply resolves it once that has trained).
    Raises SelectorError when no checkpoint fits."""
    from foundryctl.kinds.checkpoint import no_evaluation_results, parse_selector, resolve

    seen = observed.get(f"FineTuneJob.{job}")
    if seen is None or seen.attributes.get("status") != "Completed" or training_run(seen.attributes) != run:
        return None
    return resolve(parse_selector(selector), job, checkpoints_of(seen.outputs), evaluations or no_evaluation_results)


def training_run(attributes: dict[str, Any]) -> str:
    """A short digest of what a job trains: its replacement (a new run) has another one, which
    names its backend object and tells deployments that the model they follow has changed."""
    import hashlib
    import json

    # `labels` counts only when set, so chat jobs keep the digest they had before it existed.
    # So do the Foundry-only fields: hub jobs keep their digests.
    identity = {k: attributes.get(k) for k in sorted(FineTuneJob.force_new)
                if k not in ("labels", *FOUNDRY_ONLY) or attributes.get(k) is not None}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def _dataset_attributes(decl: ResourceDecl, name: str) -> dict[str, Any]:
    from foundryctl.kinds.dataset import Dataset

    dataset = _datasets(decl).get(name)
    return Dataset.desired_attributes(dataset) if dataset is not None else {}


def _split_of(training: dict[str, Any]) -> str | None:
    validation = training.get("validation")
    if validation and "split" in validation:
        return f"split:{validation['split']}:{validation['seed']}"
    return None


def _datasets(decl: ResourceDecl) -> dict[str, ResourceDecl]:
    """The manifest's datasets by name."""
    manifest = decl.manifest
    if manifest is None:
        return {}
    return {manifest.resources[a].name: manifest.resources[a] for a in manifest.addresses_of_kind("Dataset")}


def _report(decl: ResourceDecl, dataset: ResourceDecl) -> Any:
    """The training data's report counted with this job's base model (exact when its
    tokenizer is on this machine) and checked against its context length."""
    from foundryctl.datasets import ValidationOptions, load_counter
    from foundryctl.datasets.cache import report_for
    from foundryctl.kinds.dataset import SplitValidation, data_path
    from foundryctl.models import parse_base_model

    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    ref = parse_base_model(spec.base_model, decl.root)
    context = spec.hyperparameters.max_seq_length or ref.context_length
    validation = dataset.spec.validation  # type: ignore[attr-defined]
    split = (validation.split, validation.seed) if isinstance(validation, SplitValidation) else None
    labels = dataset.spec.labels  # type: ignore[attr-defined]
    return report_for(data_path(dataset, dataset.spec.path), ValidationOptions(  # type: ignore[attr-defined]
        counter=load_counter(ref), base_model=ref.name, context_length=context,
        epochs=spec.hyperparameters.epochs, split=split, max_problems=100,
        task=dataset.spec.task, labels=tuple(labels) if labels else None))  # type: ignore[attr-defined]


def _token_checks(decl: ResourceDecl, dataset: ResourceDecl) -> list[Diagnostic]:
    from foundryctl.kinds.dataset import report_diagnostics

    try:
        report = _report(decl, dataset)
    except OSError:
        return []  # the dataset reports the unreadable file
    wanted = {"over_context_length", "chat_template_error"}
    out = [d for d in report_diagnostics(report, decl.address, decl.position_of(("training_data",)))
           if d.code in wanted]
    if decl.manifest is not None and runner_of(decl.spec, decl.manifest) == "azure":  # type: ignore[arg-type]
        from foundryctl.kinds.azure_limits import training_size_check

        out.extend(training_size_check(decl, report.billed_tokens_per_epoch,
                                       decl.spec.hyperparameters.epochs))  # type: ignore[attr-defined]
    return out


def estimate(decl: ResourceDecl | None) -> str:
    """'new training run: ~N tokens x E epochs, est. D' for the plan."""
    if decl is None:
        return "new training run"
    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    if spec.foundry_project is not None:
        from foundryctl.kinds.foundry_finetune import foundry_estimate

        return foundry_estimate(decl)
    dataset = _datasets(decl).get(spec.training_data)
    epochs = spec.hyperparameters.epochs
    if dataset is None:
        return f"new training run: {epochs} epoch(s)"
    try:
        report = _report(decl, dataset)
    except OSError:
        return f"new training run: {epochs} epoch(s)"
    approx = "" if report.tokens_exact else "~"
    per_epoch = report.billed_tokens_per_epoch
    if runner_of(spec, decl.manifest) == "azure":
        return (f"new training run on Azure serverless fine-tuning: {approx}{per_epoch:,} tokens x "
                f"{epochs} epoch(s) billed")
    device = "cuda" if _cuda_available() else "cpu"
    seconds = per_epoch * epochs / ASSUMED_TOKENS_PER_SECOND[device]
    return (f"new training run: {approx}{per_epoch:,} tokens x {epochs} epoch(s), "
            f"est. {_duration(seconds)} on {device.upper() if device == 'cuda' else 'the CPU'}")


def _cuda_available() -> bool:
    """Whether this machine has an NVIDIA GPU, without importing torch (plans stay fast)."""
    import glob

    return bool(glob.glob("/dev/nvidia[0-9]*"))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    if seconds < 5400:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
