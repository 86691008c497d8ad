"""A FineTuneJob in a FoundryProject: Azure OpenAI fine-tuning through the Foundry resource's
OpenAI-compatible API (gpt-4.1 and the other models of catalog/data/foundry_finetuning.yaml).

Such a job names its data files itself (`training_file`, `validation_file`: the job uploads
them through the files API), a `training_type` (Standard, GlobalStandard or Developer) and a
`method` (supervised or dpo). The rules here, from the catalog, are the ones Azure applies when
the job is created; both backends keep them (the local backend trains the catalog's
`local_substitute` in the model's place).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from foundryctl.errors import Diagnostic, Position

if TYPE_CHECKING:
    from foundryctl.catalog import FoundryModel
    from foundryctl.kinds.finetune_job import FineTuneJobSpec
    from foundryctl.manifest.model import Manifest, ResourceDecl

HUB_ONLY = ("training_data", "validation_data")
FOUNDRY_FIELDS = ("training_file", "validation_file", "training_type")


def placement_checks(decl: ResourceDecl) -> list[Diagnostic]:
    """A job is in a hub Project or in a FoundryProject, with the fields of that kind of project."""
    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    out: list[Diagnostic] = []

    def error(message: str, path: tuple, code: str, hint: str | None = None) -> None:
        out.append(Diagnostic.error(message, decl.position_of(path), decl.address, code=code, hint=hint))

    if spec.project and spec.foundry_project:
        error("a job runs in one project: give `project` (a hub Project) or `foundry_project` "
              "(a FoundryProject), not both", ("foundry_project",), "project-exclusive")
        return out
    if not spec.project and not spec.foundry_project:
        error("the job needs a project: `project: NAME` (a hub Project) or `foundry_project: NAME` "
              "(a FoundryProject)", (), "project-missing")
        return out
    if spec.project:
        if not spec.training_data:
            error("`training_data` (a Dataset) is required for a job in a hub project", (), "field-missing")
        for field in FOUNDRY_FIELDS:
            if getattr(spec, field) is not None:
                error(f"`{field}` is for a job in a FoundryProject; a hub project's job trains on "
                      "`training_data` (a Dataset) with serverless fine-tuning", (field,), "foundry-only",
                      hint="use `foundry_project` instead of `project`, or remove the field")
        if spec.method != "supervised":
            error(f"method: {spec.method} is offered for Foundry projects' Azure OpenAI models only; a hub "
                  "project's serverless fine-tuning is supervised", ("method",), "foundry-only")
        return out
    for field in HUB_ONLY:
        if getattr(spec, field) is not None:
            error(f"`{field}` names a Dataset, which lives in a hub project; a job in a FoundryProject "
                  "uploads its own files", (field,), "hub-only",
                  hint="give the JSONL file as `training_file` (and `validation_file`)")
    if not spec.training_file:
        error("`training_file` (a JSONL file) is required for a job in a FoundryProject", (), "field-missing")
    if spec.training_type is None:
        error("`training_type` is required for a job in a FoundryProject: Standard (trains in the "
              "account's region, data stays there), GlobalStandard (cheaper, any region) or "
              "Developer (cheapest, pre-emptible; no data residency)", (), "field-missing")
    return out


def foundry_account(decl: ResourceDecl) -> str | None:
    """The FoundryAccount the job's FoundryProject belongs to (None when not declared)."""
    manifest = decl.manifest
    project = manifest.resources.get(f"FoundryProject.{decl.spec.foundry_project}") if manifest else None  # type: ignore[attr-defined]
    return project.spec.account if project is not None else None  # type: ignore[attr-defined]


def account_location(decl: ResourceDecl, manifest: Manifest) -> tuple[str | None, str | None]:
    """(account name, its location) when the manifest declares them."""
    from foundryctl import catalog

    account = foundry_account(decl)
    found = manifest.resources.get(f"FoundryAccount.{account}") if account else None
    if found is None:
        return account, None
    location = found.spec.location  # type: ignore[attr-defined]
    return account, catalog.normalize_region(location) or location


def foundry_attributes(decl: ResourceDecl, attributes: dict[str, Any]) -> dict[str, Any]:
    """What a Foundry job trains, as the plan diffs it: its files by content (sha256)."""
    from foundryctl.kinds.dataset import root_relative
    from foundryctl.kinds.finetune_job import runner_of

    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    attributes["foundry_account"] = foundry_account(decl)
    attributes["output_model"] = spec.output_model or spec.name
    attributes["runner"] = runner_of(spec, decl.manifest)
    for field, version in (("training_file", "training_version"), ("validation_file", "validation_version")):
        written = getattr(spec, field)
        if written:
            attributes[field] = root_relative(decl, written)
            attributes[version] = _sha256(decl, written)
    attributes["status"] = "Completed"
    return attributes


def _sha256(decl: ResourceDecl, written: str) -> str | None:
    from foundryctl.kinds.dataset import data_path

    try:
        return hashlib.sha256(data_path(decl, written).read_bytes()).hexdigest()
    except OSError:
        return None  # the job's checks report the unreadable file


def foundry_checks(decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
    from foundryctl import catalog
    from foundryctl.kinds.finetune_job import (
        LOCAL_ONLY_HYPERPARAMETERS,
        Hyperparameters,
        runner_checks,
    )

    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    on_azure = manifest.backend.type == "azure"
    out: list[Diagnostic] = []

    def error(message: str, path: tuple, code: str, hint: str | None = None) -> None:
        out.append(Diagnostic.error(message, decl.position_of(path), decl.address, code=code, hint=hint))

    runner = runner_checks(decl, manifest) if spec.runner else []
    if any(d.code == "runner-backend" for d in runner):
        return runner
    model = catalog.find_foundry_model(spec.base_model)
    if model is None:
        offered = ", ".join(m.name for m in catalog.foundry_models().values() if _submittable(m))
        error(f"{spec.base_model} is not a model Foundry projects fine-tune", ("base_model",),
              "model-unavailable", hint=f"use one of: {offered} (or a hub `project` for {spec.base_model})")
        return out
    if spec.task != "chat_completion":
        error(f"task: {spec.task} is not offered by Azure OpenAI fine-tuning, which trains chat completions",
              ("task",), "task-unavailable", hint="remove `task` (chat_completion is the default)")
    if spec.method not in model.methods:
        if model.methods == ("reinforcement",):
            error(f"{model.name} is fine-tuned by reinforcement (RFT, with graders) only, which foundryctl "
                  "does not submit", ("base_model",), "method-unavailable",
                  hint="fine-tune gpt-4.1, gpt-4.1-mini or gpt-4.1-nano instead")
            return out
        error(f"method: {spec.method} is not offered for {model.name} (it offers {', '.join(model.methods)})",
              ("method",), "method-unavailable",
              hint="DPO: " + ", ".join(m.name for m in catalog.foundry_models().values() if "dpo" in m.methods))
    if spec.hyperparameters.beta is not None and spec.method != "dpo":
        error("hyperparameters.beta is a setting of method: dpo", ("hyperparameters", "beta"), "dpo-only")
    if spec.training_type is not None:
        out.extend(_tier_checks(decl, manifest, model, spec.training_type, on_azure))
    if model.preview:
        out.append(Diagnostic.warning(
            f"{model.name} is a preview model on Azure: its fine-tuning may change or be withdrawn",
            decl.position_of(("base_model",)), decl.address, code="model-preview"))
    defaults = Hyperparameters()
    ignored = [n for n in LOCAL_ONLY_HYPERPARAMETERS if getattr(spec.hyperparameters, n) != getattr(defaults, n)]
    if ignored and on_azure:
        out.append(Diagnostic.warning(
            f"Azure OpenAI fine-tuning has no setting for {', '.join(ignored)}: "
            f"{'it applies' if len(ignored) == 1 else 'they apply'} to the local runner only",
            decl.position_of(("hyperparameters", ignored[0])), decl.address, code="local-only-setting"))
    if not on_azure and spec.method == "dpo" and spec.method in model.methods:
        out.append(Diagnostic.warning(
            f"the local backend trains {model.local_substitute} in place of {model.name}, and trains "
            "method: dpo supervised on each example's preferred output (its runner has no preference loss)",
            decl.position_of(("method",)), decl.address, code="local-substitute"))
    if manifest.check_files:
        out.extend(file_checks(decl, model))
    return out


def _submittable(model: FoundryModel) -> bool:
    from foundryctl import catalog

    return any(m in catalog.FOUNDRY_METHODS for m in model.methods)


def _tier_checks(decl: ResourceDecl, manifest: Manifest, model: FoundryModel, tier: str,
                 on_azure: bool) -> list[Diagnostic]:
    from foundryctl import catalog

    where = decl.position_of(("training_type",))
    if tier not in model.tiers:
        return [Diagnostic.error(
            f"training_type: {tier} is not offered for {model.name} (it trains with "
            f"{', '.join(model.tiers)})", where, decl.address, code="training-type-unavailable",
            hint=f"set training_type to {' or '.join(model.tiers)} ({catalog.foundry_source()})")]
    account, location = account_location(decl, manifest)
    regions = model.tier_regions(tier)
    if location is None or location in regions:
        return []
    severity = Diagnostic.error if on_azure else Diagnostic.warning
    others = [t for t in model.tiers if t != tier and location in model.tier_regions(t)]
    hint = (f"use training_type {' or '.join(others)}, which {model.name} has in {location}" if others
            else f"put the account in one of: {', '.join(sorted(regions))}")
    return [severity(
        f"{model.name} trains with {tier} only from accounts in {', '.join(sorted(regions))}, and "
        f"FoundryAccount.{account} is in {location}"
        + ("" if on_azure else ": the local backend runs it, Azure would refuse it"),
        where, decl.address, code="region-unavailable", hint=hint)]


def file_checks(decl: ResourceDecl, model: FoundryModel) -> list[Diagnostic]:
    """The training and validation files in the method's format, at their lines."""
    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    out: list[Diagnostic] = []
    for field in ("training_file", "validation_file"):
        written = getattr(spec, field)
        if not written:
            continue
        try:
            out.extend(_file_diagnostics(decl, field, written, spec.method, model, role=field.split("_")[0]))
        except OSError as exc:
            hint = getattr(exc, "hint", None)
            message = str(exc) if hint else f"cannot read {field} {written}: {exc.strerror or exc}"
            out.append(Diagnostic.error(message, decl.position_of((field,)), decl.address,
                                        code="file-unreadable", hint=hint))
    return out


def _file_diagnostics(decl: ResourceDecl, field: str, written: str, method: str, model: FoundryModel,
                      role: str) -> list[Diagnostic]:
    from foundryctl.kinds.dataset import data_path, report_diagnostics

    path = data_path(decl, written)
    if method == "dpo":
        from foundryctl.datasets.preference import check_preference_file

        report = check_preference_file(path)
        out = [Diagnostic.error(f"{p.message} [preference-format]",
                                Position(report.path, p.line, 1) if p.line else decl.position_of((field,)),
                                decl.address, code="preference-format",
                                hint="method: dpo trains on {\"input\": {\"messages\": [...]}, "
                                     "\"preferred_output\": [...], \"non_preferred_output\": [...]} lines")
               for p in report.problems]
        hidden = report.problem_count - len(report.problems)
        if hidden:
            out.append(Diagnostic.error(f"{hidden:,} more preference-format problem(s) in {report.path}",
                                        decl.position_of((field,)), decl.address, code="preference-format"))
        return out
    report = supervised_report(path, model, role)
    return report_diagnostics(report, decl.address, decl.position_of((field,)))


def supervised_report(path: Any, model: FoundryModel, role: str = "training") -> Any:
    from foundryctl.datasets import ValidationOptions
    from foundryctl.datasets.cache import report_for

    return report_for(path, ValidationOptions(context_length=model.training_context_length,
                                              base_model=model.name, max_problems=100,
                                              role=role))


def billed_tokens(decl: ResourceDecl) -> tuple[int, bool] | None:
    """(tokens per epoch, exact?) of the training file; None when it cannot be read."""
    from foundryctl import catalog
    from foundryctl.kinds.dataset import data_path

    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    model = catalog.find_foundry_model(spec.base_model)
    if model is None or not spec.training_file:
        return None
    try:
        path = data_path(decl, spec.training_file)
        if spec.method == "dpo":
            from foundryctl.datasets.preference import check_preference_file

            return check_preference_file(path).approx_tokens, False
        report = supervised_report(path, model)
    except OSError:
        return None
    return report.billed_tokens_per_epoch, report.tokens_exact


def tier_note(tier: str | None) -> str:
    """What Learn says a tier costs next to Standard, for the plan and the cost line."""
    from foundryctl import catalog

    found = catalog.foundry_tiers().get(tier or "")
    if found is None:
        return ""
    low, high = found.relative_price
    price = "the Standard price" if (low, high) == (1.0, 1.0) else f"{low:g}-{high:g}x the Standard price"
    extras = ["data stays in the account's region" if found.data_residency else "no data residency"]
    if found.preemptible:
        extras.append("pre-emptible (may pause and resume)")
    return f"{tier}: {price}, {', '.join(extras)}"


def foundry_estimate(decl: ResourceDecl) -> str:
    spec: FineTuneJobSpec = decl.spec  # type: ignore[assignment]
    epochs = spec.hyperparameters.epochs
    head = f"new {spec.method} fine-tuning run of {spec.base_model}, training_type {spec.training_type}"
    tokens = billed_tokens(decl)
    note = tier_note(spec.training_type)
    if tokens is None:
        return f"{head}: {epochs} epoch(s)" + (f" ({note})" if note else "")
    per_epoch, exact = tokens
    return (f"{head}: {'' if exact else '~'}{per_epoch:,} tokens x {epochs} epoch(s) billed"
            + (f" ({note})" if note else ""))
