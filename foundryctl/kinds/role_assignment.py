"""RoleAssignment: an Azure RBAC role for a principal at a scope (resource group, hub or project)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from foundryctl import catalog
from foundryctl.kinds.base import Kind, Ref, Spec
from foundryctl.kinds.project import inside_project
from foundryctl.suggest import did_you_mean

if TYPE_CHECKING:
    from foundryctl.errors import Diagnostic
    from foundryctl.manifest.model import Manifest, ResourceDecl

# Fixed namespace for the deterministic assignment name uuid5(scope, principal, role).
ASSIGNMENT_NAMESPACE = uuid.UUID("6f1c2b4e-3f0a-5d8e-9b7a-f0c9d1e2a3b4")


def assignment_name(scope_id: str, principal_id: str, role_id: str) -> str:
    """Azure role assignment names are GUIDs; deriving it makes re-assignment idempotent."""
    key = f"{scope_id.lower()}|{principal_id.lower()}|{role_id.lower()}"
    return str(uuid.uuid5(ASSIGNMENT_NAMESPACE, key))


# Scope fields naming a resource, and the kind each names.
RESOURCE_SCOPES = {"hub": "Hub", "project": "Project", "foundry_account": "FoundryAccount",
                   "foundry_project": "FoundryProject"}
SCOPE_FORMS = ("resource_group, {hub: NAME}, {project: NAME}, {foundry_account: NAME}, "
               "{foundry_account: NAME, foundry_project: NAME}")


class Scope(BaseModel):
    """Where the role applies: `resource_group`, `{hub: NAME}`, `{project: NAME}`,
    `{foundry_account: NAME}` or `{foundry_project: NAME}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource_group: bool = False
    hub: Annotated[str | None, Ref("Hub", containment=True)] = None
    project: Annotated[str | None, Ref("Project", containment=True)] = None
    foundry_account: Annotated[str | None, Ref("FoundryAccount", containment=True)] = None
    foundry_project: Annotated[str | None, Ref("FoundryProject", containment=True)] = None

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, value: Any) -> Any:
        if value == "resource_group":
            return {"resource_group": True}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Scope:
        if self.foundry_project is not None and self.foundry_account is None:
            raise ValueError("a foundry_project scope also names its account: "
                             "{foundry_account: ACCOUNT, foundry_project: PROJECT}")
        chosen = [self.resource_group, self.hub is not None, self.project is not None,
                  self.foundry_account is not None]
        if sum(chosen) != 1:
            raise ValueError(f"scope must be exactly one of: {SCOPE_FORMS}")
        return self

    def resource(self) -> tuple[str, str] | None:
        """(field, name) of the resource the scope names, or None for the resource group (a
        Foundry project scope names the project; its account is the container)."""
        order = ("foundry_project", "foundry_account", "hub", "project")
        return next(((f, getattr(self, f)) for f in order if getattr(self, f) is not None), None)

    @model_serializer
    def _serialize(self) -> dict[str, Any]:
        if self.foundry_project is not None:
            return {"foundry_account": self.foundry_account, "foundry_project": self.foundry_project}
        found = self.resource()
        return {found[0]: found[1]} if found else {"resource_group": True}


class RoleAssignmentSpec(Spec):
    kind: Literal["RoleAssignment"]
    principal: Annotated[str, Field(min_length=1, description=(
        "Object id of the user, group or service principal (any identifier on the local backend)."))]
    principal_type: Literal["User", "Group", "ServicePrincipal", "ForeignGroup", "Device"] | None = Field(
        None, description=("The principal's kind; left out, the azure backend asks Microsoft Graph "
                           "(ARM refuses a type that is not the principal's own)."))
    role: str = Field(description="Built-in role name (e.g. 'Azure AI Developer') or its GUID.")
    scope: Scope = Field(description=f"One of: {SCOPE_FORMS}.")
    description: str = ""

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        role = catalog.find_role(value)
        if role is None:
            suggestion = did_you_mean(value, catalog.roles())
            raise ValueError(f"unknown role {value!r}" + (
                suggestion or f" (built-in roles: {', '.join(catalog.roles())})"))
        return role.name  # one spelling, so 'azure ai developer' and the GUID do not diff


class RoleAssignment(Kind):
    name = "RoleAssignment"
    spec = RoleAssignmentSpec
    summary = ("Assigns a built-in role to a principal at a scope; the assignment name is "
               "uuid5(scope, principal, role), so re-assigning the same triple is a no-op.")
    force_new = frozenset({"principal", "principal_type", "role", "scope"})
    adopts_existing = True  # Azure answers 409 RoleAssignmentExists; we take it over

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        scope: Scope = decl.spec.scope  # type: ignore[attr-defined]
        if scope.project is not None:
            return inside_project(scope.project, manifest)
        if scope.hub is not None:
            return [f"Hub.{scope.hub}"]
        if scope.foundry_project is not None:
            return [f"FoundryAccount.{scope.foundry_account}", f"FoundryProject.{scope.foundry_project}"]
        if scope.foundry_account is not None:
            return [f"FoundryAccount.{scope.foundry_account}"]
        return []

    @classmethod
    def check(cls, decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
        from foundryctl.errors import Diagnostic

        scope: Scope = decl.spec.scope  # type: ignore[attr-defined]
        project = manifest.resources.get(f"FoundryProject.{scope.foundry_project}")
        if project is None or project.spec.account == scope.foundry_account:  # type: ignore[attr-defined]
            return []
        return [Diagnostic.error(
            f"scope names FoundryProject.{scope.foundry_project} in account {scope.foundry_account!r}, "
            f"but that project is in account {project.spec.account!r}",  # type: ignore[attr-defined]
            decl.position_of(("scope", "foundry_account")), decl.address, code="invalid-value",
            hint=f"set foundry_account: {project.spec.account}")]  # type: ignore[attr-defined]
