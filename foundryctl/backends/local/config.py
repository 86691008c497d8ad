"""The manifest's `backend: {type: local, ...}` block."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class LocalBackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["local"] = "local"
    path: str = Field(".foundryctl/local", description=(
        "Directory of the local control plane (relative to the manifest); separate from state."))
    subscription_id: str | None = Field(None, pattern=GUID_PATTERN, description=(
        "Subscription id used in ARM ids; default: one generated when the control plane is created."))
    resource_group: str = Field("foundryctl-local", pattern=r"^[-\w._()]{1,90}$",
                                description="Resource group that holds hubs and projects.")
    principal: str | None = Field(None, min_length=1, description=(
        "Acting principal for data-plane operations; default $FOUNDRYCTL_PRINCIPAL, then the OS user."))
    purge_on_delete: bool = Field(True, description=(
        "Delete hubs, projects and Foundry accounts for good (the default here, for quick "
        "rehearsals); false: soft-delete them as Azure does, keeping the name taken (14 days for "
        "hubs and projects, 48 hours for Foundry accounts, with their custom subdomain)."))
    registration_delay: float = Field(1.0, ge=0, le=600, description=(
        "Seconds a provider registration stays Registering before it is Registered."))
    api_latency: float = Field(0.0, ge=0, le=60, description=(
        "Simulated seconds per request leg (before and after each write), to rehearse slow clouds."))
