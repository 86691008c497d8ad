"""FoundryAccount and FoundryProject: a Microsoft Foundry resource (a Cognitive Services
account of kind AIServices that allows project management) and the projects inside it.

Learn calls these "Foundry projects" and recommends them for most new work; hub projects
(kinds Hub and Project) are the "classic" model. Fields follow the ARM REST API at
api-version 2025-06-01 (`Microsoft.CognitiveServices/accounts` and `accounts/projects`);
the account's `kind` is always AIServices and `allowProjectManagement` always true, so they
are not manifest fields.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator

from foundryctl.kinds.base import Kind, Ref, Spec, name_rule
from foundryctl.kinds.hub import Tags, check_region

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest, ResourceDecl

# azure-rest-api-specs 2025-06-01: accountName and projectName are 2-64 characters matching
# ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$. foundryctl leaves out '.', which would break the address
# `Kind.name` every reference and command uses.
COGNITIVE_NAME = name_rule(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{1,63}$",
                           "use 2-64 letters, digits, '_' or '-', starting with a letter or digit "
                           "(Azure also allows '.', which foundryctl addresses cannot hold)")
# Learn (custom subdomain names for Azure AI services): a DNS label under
# cognitiveservices.azure.com, globally unique, letters, digits and hyphens, not starting
# or ending with a hyphen. Azure keeps it in lower case.
_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SOFT_DELETE_HOURS = 48  # Learn: "Recover or purge deleted Azure AI services resources"



def held_account_note(name: str, restore: bool, deleted_at: str, until: str) -> tuple[str, bool]:
    """The plan's word on creating Foundry account `name` again while Azure keeps it
    soft-deleted: (text, whether apply fails as declared)."""
    head = (f"foundryctl deleted Foundry account {name} at {deleted_at} without purging it, and Azure keeps "
            f"it soft-deleted (name and custom subdomain taken) until {until}")
    if restore:
        return head, False  # the create's own note says apply recovers it
    return (f"{head}, so the create fails (FlagMustBeSetForRestore) unless it has been purged since: set "
            "restore_soft_deleted: true to recover it, purge it (`az cognitiveservices account purge`), or "
            "pick another name"), True


def _subdomain(value: str) -> str:
    lowered = value.lower()
    if not _SUBDOMAIN.match(lowered):
        raise ValueError(f"invalid custom subdomain {value!r}: use 2-64 letters, digits or '-', "
                         "starting and ending with a letter or digit (it becomes "
                         f"https://{lowered or 'NAME'}.cognitiveservices.azure.com)")
    if len(lowered) < 2:
        raise ValueError(f"invalid custom subdomain {value!r}: use at least 2 characters")
    return lowered


class FoundryAccountSpec(Spec):
    kind: Literal["FoundryAccount"]
    name: Annotated[str, COGNITIVE_NAME, Field(description="Account name (2-64 characters), unique in "
                                                           "the resource group.")]
    location: str = Field(description="Azure region, e.g. eastus2 or 'East US 2'.")
    custom_subdomain_name: Annotated[str, AfterValidator(_subdomain), Field(description=(
        "DNS label of the account's endpoint (https://LABEL.cognitiveservices.azure.com); globally "
        "unique, required for projects; cannot change once set."))]
    sku: Literal["S0"] = Field("S0", description="Pricing tier; AIServices accounts are S0.")
    public_network_access: Literal["Enabled", "Disabled"] = Field(
        "Enabled", description="Whether the endpoint accepts traffic from public networks.")
    disable_local_auth: bool = Field(False, description=(
        "Refuse API keys: callers must use Microsoft Entra ID tokens."))
    identity: Literal["SystemAssigned", "None"] = Field("SystemAssigned", description=(
        "Managed identity of the account; projects need the account to have one."))
    restore_soft_deleted: bool = Field(False, description=(
        "When an account of this name was deleted within the last 48 hours (Azure soft-deletes "
        "accounts), recover it instead of failing with FlagMustBeSetForRestore."))
    tags: Tags

    _region = field_validator("location")(check_region)


class FoundryProjectSpec(Spec):
    kind: Literal["FoundryProject"]
    name: Annotated[str, COGNITIVE_NAME, Field(description="Project name (2-64 characters), unique in "
                                                           "its account.")]
    account: Annotated[str, Ref("FoundryAccount", containment=True),
                       Field(description="Name of the FoundryAccount it belongs to.")]
    display_name: str | None = Field(None, description="Friendly name shown in the portal.")
    description: str = ""
    identity: Literal["SystemAssigned", "None"] = Field(
        "SystemAssigned", description="Managed identity of the project.")
    tags: Tags


class FoundryAccount(Kind):
    name = "FoundryAccount"
    spec = FoundryAccountSpec
    summary = ("A Microsoft Foundry resource (Cognitive Services account of kind AIServices with "
               "project management); Azure soft-deletes it for 48 hours.")
    # Azure refuses to move an account or change its endpoint's DNS label in place.
    force_new = frozenset({"location", "custom_subdomain_name"})

    @classmethod
    def implicit_dependencies(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        return manifest.addresses_of_kind("ProviderRegistration")

    @classmethod
    def describe_changes(cls, before: dict[str, Any] | None, after: dict[str, Any],
                         decl: ResourceDecl | None = None) -> list[str]:
        if before is None and after.get("restore_soft_deleted"):
            return ["recovers a soft-deleted account of this name if there is one (restore: true)"]
        return []


class FoundryProject(Kind):
    name = "FoundryProject"
    spec = FoundryProjectSpec
    summary = "A project in a FoundryAccount; its location follows the account."
    force_new = frozenset({"account"})

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        return [f"FoundryAccount.{decl.spec.account}"]  # type: ignore[attr-defined]



def inside_foundry_project(project: str, manifest: Manifest) -> list[str]:
    """The scope chain of something inside FoundryProject `project`: its account (when
    declared), then it."""
    decl = manifest.resources.get(f"FoundryProject.{project}")
    return ([f"FoundryAccount.{decl.spec.account}"] if decl else []) + [f"FoundryProject.{project}"]  # type: ignore[attr-defined]
