"""FoundryDeployment: a model deployment of a FoundryAccount (`Microsoft.CognitiveServices/
accounts/deployments`, ARM api-version 2025-06-01) serving a model fine-tuned in one of its
projects, with a deployment type (sku name and capacity) and a content-filter policy
(`raiPolicyName`: a RaiPolicy of the account, or Azure's default).

Learn ("Customize a model with fine-tuning", deploy step): the body is {"sku": {"name",
"capacity"}, "properties": {"model": {"format": "OpenAI", "name": FINE_TUNED_MODEL, "version":
"1"}}}; a fine-tuned model deploys as Standard, GlobalStandard or Developer (Developer: for
evaluation, no data residency, no SLA). The model is the FineTuneJob's result, which exists
only once the job has trained: apply waits for the job, and the plan says so.

A separate kind from Deployment (a hub project's serverless endpoint): another resource
provider and other fields. The local backend serves it as it serves a Deployment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from foundryctl.errors import Diagnostic
from foundryctl.kinds.base import Kind, Ref, Spec, name_rule
from foundryctl.kinds.deployment import RUNNING

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest, ResourceDecl

DEPLOYMENT_NAME = name_rule(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$",
                            "use 2-64 letters, digits, '_' or '-', starting with a letter or digit")


class Sku(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["Standard", "GlobalStandard", "Developer"] = Field(description=(
        "Deployment type of a fine-tuned model: Standard (the account's region), GlobalStandard, "
        "or Developer (for evaluation: no data residency, no SLA)."))
    capacity: int = Field(1, ge=1, le=10000, description="Capacity units (thousands of tokens per minute).")


class FoundryDeploymentSpec(Spec):
    kind: Literal["FoundryDeployment"]
    name: Annotated[str, DEPLOYMENT_NAME, Field(description="Deployment name; callers name it as the `model`.")]
    job: Annotated[str, Ref("FineTuneJob"), Field(description=(
        "Name of a FineTuneJob in a FoundryProject: its fine-tuned model, following the job when it is replaced."))]
    sku: Sku
    rai_policy: Annotated[str | None, Ref("RaiPolicy"), Field(description=(
        "Name of a RaiPolicy of the account (the deployment's raiPolicyName); default: Azure's default policy."))] = None


class FoundryDeployment(Kind):
    name = "FoundryDeployment"
    spec = FoundryDeploymentSpec
    summary = "A deployment of a model fine-tuned in a FoundryProject, with its type, capacity and content-filter policy."
    force_new = frozenset({"account"})
    adopts_existing = True  # Azure's PUT is idempotent

    @classmethod
    def desired_attributes(cls, decl: ResourceDecl) -> dict[str, Any]:
        from foundryctl.kinds.finetune_job import FineTuneJob, training_run

        attributes = cls.attributes(decl.spec)
        manifest = decl.manifest
        job = manifest.resources.get(f"FineTuneJob.{decl.spec.job}") if manifest else None  # type: ignore[attr-defined]
        job_attributes = FineTuneJob.desired_attributes(job) if job is not None else {}
        attributes["account"] = job_attributes.get("foundry_account")
        attributes["foundry_project"] = job_attributes.get("foundry_project")
        # The run it serves: a replaced job (a new run) is a new model, deployed in place.
        attributes["run"] = (f"{decl.spec.job}-{training_run(job_attributes)}"  # type: ignore[attr-defined]
                             if job_attributes else None)
        attributes["status"] = RUNNING  # a stopped local server, a Failed Azure deployment: drift apply repairs
        return attributes

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        account = decl.attributes.get("account")
        return [f"FoundryAccount.{account}"] if account else []

    @classmethod
    def describe_changes(cls, before: dict[str, Any] | None, after: dict[str, Any],
                         decl: ResourceDecl | None = None) -> list[str]:
        if before is None or before.get("run") != after.get("run"):
            return [f"deploys the model of FineTuneJob.{after.get('job')} once it is trained"]
        if before.get("status") not in (None, after.get("status")):
            return [f"the deployment is {str(before['status']).lower()}; apply deploys it again"]
        return []

    @classmethod
    def check(cls, decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
        spec: FoundryDeploymentSpec = decl.spec  # type: ignore[assignment]
        out: list[Diagnostic] = []
        job = manifest.resources.get(f"FineTuneJob.{spec.job}")
        if job is not None and job.spec.foundry_project is None:  # type: ignore[attr-defined]
            out.append(Diagnostic.error(
                f"FineTuneJob {spec.job!r} trains in a hub project; a FoundryDeployment serves models "
                "fine-tuned in a FoundryProject", decl.position_of(("job",)), decl.address,
                code="hub-job", hint="deploy a hub project's model with `kind: Deployment`"))
            return out
        account = decl.attributes.get("account")
        policy = manifest.resources.get(f"RaiPolicy.{spec.rai_policy}") if spec.rai_policy else None
        if policy is not None and account and policy.spec.account != account:  # type: ignore[attr-defined]
            out.append(Diagnostic.error(
                f"RaiPolicy {spec.rai_policy!r} belongs to FoundryAccount {policy.spec.account!r}, and the "  # type: ignore[attr-defined]
                f"model is deployed in {account!r}", decl.position_of(("rai_policy",)), decl.address,
                code="cross-account", hint="a deployment names a content-filter policy of its own account"))
        return out
