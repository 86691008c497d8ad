"""Hub: an Azure AI Foundry hub (a workspace of kind Hub) that projects live in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator

from foundryctl import catalog
from foundryctl.kinds.base import Kind, Spec, name_rule
from foundryctl.suggest import did_you_mean

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest, ResourceDecl

# Azure's rule for Machine Learning workspace names (hubs and projects share it).
WORKSPACE_NAME = name_rule(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$",
                           "workspace names have 3-33 letters, digits, '-' or '_', "
                           "starting with a letter or digit")
Tags = Annotated[dict[str, str], Field(default_factory=dict, description="Azure resource tags.")]
# What create does when the name belongs to a workspace soft-deleted within the retention
# period (Azure keeps the name taken for 14 days unless it is purged).
# Left out: fail. Not sent to Azure: the last applied value is what refresh reports.
OnSoftDeleted = Annotated[Literal["fail", "purge", "recover"] | None, Field(description=(
    "When the name belongs to a soft-deleted workspace (destroyed within 14 days without "
    "purge_on_delete): fail (the default), purge it (its data is lost) and create anew, or "
    "recover it (the local backend recovers; on Azure recovery is a portal step, see "
    "docs/azure-backend.md)."))]

SOFT_DELETE_DAYS = 14  # Learn: "Workspace soft deletion", retention period


def held_name_note(kind: str, name: str, choice: str | None, deleted_at: str, until: str, *,
                   recover_in_portal: bool) -> tuple[str, bool]:
    """The plan's word on creating hub or project `name` again while its soft-deleted
    workspace holds the name: (text, whether apply fails as declared). With purge or recover
    the create's own note already says what apply does; this adds when, and until when."""
    head = (f"foundryctl deleted {kind.lower()} {name} at {deleted_at} without purging it, and Azure keeps "
            f"a soft-deleted workspace's name until {until}")
    if choice == "purge" or (choice == "recover" and not recover_in_portal):
        return head, False
    if choice == "recover":
        return (f"{head}: recover it in the portal (Azure Machine Learning > Recently deleted) before apply, "
                "which then adopts it (on_soft_deleted: recover)"), True
    return (f"{head}, so the create fails unless it has been purged or recovered since: set on_soft_deleted: "
            "purge (its data is lost) or recover, or pick a new name"), True


def check_region(value: str) -> str:
    region = catalog.normalize_region(value)
    if region is None:
        raise ValueError(f"unknown Azure region {value!r}{did_you_mean(value, catalog.regions())}")
    return region


class HubSpec(Spec):
    kind: Literal["Hub"]
    name: Annotated[str, WORKSPACE_NAME, Field(description="Workspace name (3-33 characters).")]
    location: str = Field(description="Azure region, e.g. eastus2 or 'East US 2'.")
    display_name: str | None = Field(None, description="Friendly name shown in the portal.")
    description: str = ""
    tags: Tags
    on_soft_deleted: OnSoftDeleted = None

    _region = field_validator("location")(check_region)


class Hub(Kind):
    name = "Hub"
    spec = HubSpec
    summary = "An Azure AI Foundry hub; its region decides where its projects can fine-tune and deploy."
    force_new = frozenset({"location"})

    @classmethod
    def implicit_dependencies(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        # Registrations are subscription prerequisites: nothing is built before them.
        return manifest.addresses_of_kind("ProviderRegistration")
