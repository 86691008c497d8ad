"""Limits Azure documents for serverless fine-tuning and deployments (catalog/data/limits.yaml),
checked at validate so a manifest Azure would refuse fails before apply creates anything.

Errors on the azure backend only: the local backend serves as many endpoints per model as asked
(the quickstart's semantics stay as they are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foundryctl.errors import Diagnostic

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest, ResourceDecl


def custom_model_of(decl: ResourceDecl) -> tuple[str, str, Any] | None:
    """(project, 'job'|'model', key) naming the custom model a Deployment serves."""
    spec = decl.spec
    if spec.model.job is not None:  # type: ignore[attr-defined]
        return spec.project, "job", spec.model.job  # type: ignore[attr-defined]
    return spec.project, "model", (spec.model.name, spec.model.version)  # type: ignore[attr-defined]


def deployment_checks(decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
    """One serverless deployment per custom model, and at most the documented number of
    fine-tuned deployments per project."""
    from foundryctl import catalog

    if manifest.backend.type != "azure":
        return []
    limits = catalog.azure_limits()
    out: list[Diagnostic] = []
    mine = custom_model_of(decl)
    deployments = [manifest.resources[a] for a in manifest.addresses_of_kind("Deployment")]
    same = [d for d in deployments if custom_model_of(d) == mine]
    if len(same) > limits.deployments_per_custom_model and same.index(decl) >= limits.deployments_per_custom_model:
        first = same[0]
        what = (f"FineTuneJob {mine[2]!r}'s model" if mine[1] == "job"  # type: ignore[index]
                else f"model {mine[2][0]}:{mine[2][1]}")  # type: ignore[index]
        out.append(Diagnostic.error(
            f"{decl.address} deploys {what}, which {first.address} ({first.position_of(('model',))}) already "
            f"deploys: Azure permits {limits.deployments_per_custom_model} serverless deployment per custom "
            f"model", decl.position_of(("model",)), decl.address, code="one-deployment-per-model",
            hint=f"serve both callers from {first.address}, or train a second job for this one "
                 f"({limits.serverless_source})"))
    in_project = [d for d in deployments if d.spec.project == decl.spec.project]  # type: ignore[attr-defined]
    cap = limits.fine_tuned_deployments_per_resource
    if len(in_project) > cap and in_project.index(decl) >= cap:
        out.append(Diagnostic.error(
            f"project {decl.spec.project!r} has {len(in_project)} deployments of fine-tuned models; Azure "  # type: ignore[attr-defined]
            f"allows {cap} per resource, and {decl.address} is number {in_project.index(decl) + 1}",
            decl.position_of(("project",)), decl.address, code="quota-deployments",
            hint=f"spread them over projects, or ask Azure Support for more ({limits.fine_tuning_source})"))
    return out


def job_checks(decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
    """At most the documented number of fine-tuning jobs per project (each retry is one more:
    Azure never frees a job name)."""
    from foundryctl import catalog

    if manifest.backend.type != "azure":
        return []
    limits = catalog.azure_limits()
    jobs = [manifest.resources[a] for a in manifest.addresses_of_kind("FineTuneJob")
            if manifest.resources[a].spec.project == decl.spec.project]  # type: ignore[attr-defined]
    cap = limits.training_jobs_per_resource
    out: list[Diagnostic] = []
    if len(jobs) > cap and jobs.index(decl) >= cap:
        out.append(Diagnostic.error(
            f"project {decl.spec.project!r} has {len(jobs)} fine-tuning jobs; Azure allows {cap} training "  # type: ignore[attr-defined]
            f"jobs per resource, and {decl.address} is number {jobs.index(decl) + 1}",
            decl.position_of(("project",)), decl.address, code="quota-jobs",
            hint=f"spread them over projects ({limits.fine_tuning_source})"))
    running = limits.running_jobs_per_resource + limits.queued_jobs_per_resource
    if cap >= len(jobs) > running and jobs.index(decl) == running:
        out.append(Diagnostic.warning(
            f"project {decl.spec.project!r} submits {len(jobs)} fine-tuning jobs; Azure runs "  # type: ignore[attr-defined]
            f"{limits.running_jobs_per_resource} at a time and queues {limits.queued_jobs_per_resource}, "
            "so the rest wait for a later apply", decl.position_of(("project",)), decl.address,
            code="quota-queued-jobs", hint=limits.fine_tuning_source))
    return out


def training_size_check(decl: ResourceDecl, billed_tokens_per_epoch: int, epochs: int) -> list[Diagnostic]:
    """Azure fails a job whose training tokens x epochs pass the documented maximum."""
    from foundryctl import catalog

    limits = catalog.azure_limits()
    total = billed_tokens_per_epoch * epochs
    if total <= limits.max_training_tokens:
        return []
    return [Diagnostic.error(
        f"{billed_tokens_per_epoch:,} training tokens x {epochs} epoch(s) = {total:,} tokens, over Azure's "
        f"{limits.max_training_tokens:,}-token maximum for one fine-tuning job",
        decl.position_of(("training_data",)), decl.address, code="quota-training-tokens",
        hint=f"train on less data or fewer epochs ({limits.fine_tuning_source})")]
