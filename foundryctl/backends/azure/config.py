"""The manifest's `backend: {type: azure, ...}` block (import-light: no Azure SDK here)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundryctl.backends.local.config import GUID_PATTERN


class AzureBackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["azure"]
    subscription_id: str = Field(pattern=GUID_PATTERN, description="Azure subscription id.")
    resource_group: str = Field(pattern=r"^[-\w._()]{1,90}$", description=(
        "Existing resource group that holds hubs and projects (foundryctl does not create it)."))
    location: str = Field(description=(
        "Region of the resource group; hubs name their own, checked against the catalog."))
    tenant_id: str | None = Field(None, pattern=GUID_PATTERN, description=(
        "Entra tenant to authenticate against; default: the credential's own."))
    arm_endpoint: str = Field("https://management.azure.com", pattern=r"^https://", description=(
        "Azure Resource Manager endpoint (another for sovereign clouds)."))
    purge_on_delete: bool = Field(False, description=(
        "Delete hubs, projects and Foundry accounts permanently; default: Azure's soft delete (hubs and "
        "projects recoverable for 14 days, Foundry accounts for 48 hours; the name stays taken until then)."))
    unregister_providers: bool = Field(False, description=(
        "Unregister provider namespaces on destroy; default: leave them registered (unregistering "
        "affects the whole subscription, and Azure refuses while any resource uses the namespace)."))
    evaluations_path: str = Field(".foundryctl/evaluations", min_length=1, description=(
        "Where Evaluation runs are kept (relative to the manifest's directory): Azure has no object "
        "for them. Without them (a fresh CI checkout) an evaluation scores again."))
    poll_interval: float = Field(15.0, gt=0, le=300, description=(
        "Seconds between status polls of provider registrations and fine-tune jobs."))
    job_wait_timeout: float = Field(172800.0, gt=0, description=(
        "Seconds one apply waits for a fine-tuning job to finish (default 48 h); past it apply stops "
        "waiting with an error, the job trains on, and the next apply picks it up."))
    registration_timeout: float = Field(900.0, gt=0, description=(
        "Seconds apply waits for a provider registration to reach Registered."))
    principal_retry_timeout: float = Field(300.0, ge=0, description=(
        "Seconds a role assignment retries PrincipalNotFound (a new principal takes a while "
        "to replicate in Entra ID)."))
    resolve_principal_types: bool = Field(True, description=(
        "Look a RoleAssignment's principal up in Microsoft Graph when it leaves principal_type "
        "out (needs Directory.Read.All or the Directory Readers role); false: principal_type "
        "must be set."))
    graph_endpoint: str = Field("https://graph.microsoft.com", pattern=r"^https://", description=(
        "Microsoft Graph endpoint (another for sovereign clouds)."))
    max_parallel_reads: int = Field(16, ge=1, le=64, description=(
        "Resources refreshed at once; ARM throttling (429 Retry-After) is waited out."))

    @field_validator("location")
    @classmethod
    def _region(cls, value: str) -> str:
        from foundryctl.kinds.hub import check_region

        return check_region(value)
