"""RoleAssignment on Azure: a built-in role for a principal at the resource group, a hub or a
project (azure-mgmt-authorization `role_assignments`, api-version 2022-04-01).

The assignment's name is uuid5(scope, principal, role), so a retried PUT lands on the same
assignment. An equal assignment made under another name (the portal, the az CLI) answers
409 RoleAssignmentExists; it is adopted. A principal created moments ago answers
PrincipalNotFound until Entra ID replicates it; that is retried for `principal_retry_timeout`.

A principal_type the manifest leaves out is read from Microsoft Graph (graph.py) at plan and
at apply: ARM answers 400 UnmatchedPrincipalType to a type that is not the principal's own
(a service principal, the usual CI identity, assigned as a User).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from foundryctl import catalog
from foundryctl.backends import arm
from foundryctl.backends.azure.errors import (
    azure_message,
    backend_error,
    calling,
    error_code,
    read_or_none,
    sdk_errors,
    unless_absent,
)
from foundryctl.backends.azure import graph
from foundryctl.backends.azure.handlers.base import AzureHandler
from foundryctl.backends.base import FieldError, Observed, Progress, Target
from foundryctl.errors import BackendError
from foundryctl.kinds.role_assignment import assignment_name

ID_MARKER = f"/providers/{arm.ROLE_ASSIGNMENTS}/"
# Waits between PrincipalNotFound retries: the first is poll_interval (at most FIRST_BACKOFF),
# then doubling up to MAX_BACKOFF, never past principal_retry_timeout.
FIRST_BACKOFF = 2.0
MAX_BACKOFF = 30.0

PRINCIPAL_HINT = ("check the object id (`az ad user show --id USER --query id -o tsv`, or `az ad sp show` "
                  "for a service principal); a principal created moments ago can take minutes to "
                  "replicate in Entra ID: apply again, or raise the backend's principal_retry_timeout")


SET_TYPE = ("set principal_type on the RoleAssignment (User, Group or ServicePrincipal; "
            "`az ad sp show --id ID` finds a service principal, `az ad user show --id ID` a user)")
_ACTUAL_TYPE = re.compile(r"has type '(\w+)'")


def split_assignment_id(assignment_id: str) -> tuple[str, str]:
    """`{scope}/providers/Microsoft.Authorization/roleAssignments/{name}` -> (scope, name)."""
    index = assignment_id.lower().rfind(ID_MARKER.lower())
    if index <= 0:
        raise BackendError("InvalidRoleAssignmentId", f"{assignment_id!r} is not a role assignment id",
                           hint=f"a role assignment id looks like SCOPE{ID_MARKER}GUID")
    return assignment_id[:index], assignment_id[index + len(ID_MARKER):].strip("/")


def _role_guid(role_definition_id: str) -> str:
    return arm.last_segment(role_definition_id).lower()


def _timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RoleAssignmentHandler(AzureHandler):
    kind = "RoleAssignment"

    def __init__(self, backend: Any):
        super().__init__(backend)
        self._resolved: dict[str, str] = {}

    # -- principal types -----------------------------------------------------------------

    def principal_type(self, attributes: dict[str, Any]) -> str:
        """The manifest's principal_type, or the one Microsoft Graph says the principal has."""
        if attributes.get("principal_type"):
            return attributes["principal_type"]
        principal = str(attributes["principal"])
        known = self._resolved.get(principal.lower())
        if known:
            return known
        if not self.config.resolve_principal_types:
            raise FieldError("PrincipalTypeRequired",
                             f"principal_type is not set for principal {principal}, and the backend's "
                             "resolve_principal_types is false", ("principal_type",), hint=SET_TYPE)
        if not catalog.is_guid(principal):
            raise FieldError("InvalidPrincipalId",
                             f"principal {principal!r} is not an Entra ID object id (a GUID)", ("principal",),
                             hint="find it with `az ad user show --id USER@DOMAIN --query id -o tsv` (a user), "
                                  "`az ad group show` or `az ad sp show`")
        lookup = graph.principal_type(self.backend.credential, self.config.graph_endpoint, principal)
        if lookup.principal_type is None:
            why = ("Microsoft Graph does not know it" if lookup.status == 404
                   else f"Microsoft Graph could not say ({lookup.problem})")
            hint = SET_TYPE + ("; reading directory objects needs Directory.Read.All or the Directory "
                               "Readers role" if lookup.status == 403 else "")
            if lookup.status == 404:
                hint += "; " + PRINCIPAL_HINT
            raise FieldError("PrincipalTypeUnresolved",
                             f"principal_type is not set and the type of principal {principal} is unknown: "
                             f"{why}", ("principal_type",), hint=hint)
        self._resolved[principal.lower()] = lookup.principal_type
        return lookup.principal_type

    def create_notes(self, target: Target) -> list[str]:
        if target.attributes.get("principal_type"):
            return []
        return [f"principal_type: {self.principal_type(target.attributes)} (from Microsoft Graph)"]

    # -- ids ---------------------------------------------------------------------------

    def scope_id(self, scope: dict[str, Any]) -> str:
        return arm.scope_resource_id(self.subscription, self.resource_group, scope)

    def role_definition_id(self, role_guid: str) -> str:
        return arm.role_definition_id(self.subscription, role_guid)

    def _role(self, name: str) -> catalog.RoleDefinition:
        role = catalog.find_role(name)
        if role is None:
            raise BackendError("RoleDefinitionDoesNotExist", f"unknown role {name!r}",
                               hint=f"built-in roles: {', '.join(catalog.roles())}")
        return role

    def identify(self, target: Target) -> str:
        a = target.attributes
        scope = self.scope_id(a["scope"])
        name = assignment_name(scope, a["principal"], self._role(a["role"]).id)
        return f"{scope}{ID_MARKER}{name}"

    def _located(self, target: Target) -> tuple[str, str]:
        return split_assignment_id(target.backend_id or self.identify(target))

    @property
    def _operations(self) -> Any:
        return self.clients.authorization.role_assignments

    # -- observing ---------------------------------------------------------------------

    def _observe(self, assignment: Any, known: dict[str, Any] | None) -> Observed | None:
        """`known` (the target's attributes) keeps the manifest's spellings where Azure's
        value means the same: the principal id's case, the scope's manifest form."""
        if assignment is None:
            return None
        known = known or {}
        scope_id = assignment.scope
        principal = assignment.principal_id
        if str(known.get("principal", "")).lower() == principal.lower():
            principal = known["principal"]
        known_scope = known.get("scope")
        if not known_scope or self.scope_id(known_scope).lower() != scope_id.lower():
            known_scope = self._scope_form(scope_id)
        role = catalog.find_role(_role_guid(assignment.role_definition_id))
        attributes = {"principal": principal, "principal_type": assignment.principal_type,
                      "role": role.name if role else assignment.role_definition_id,
                      "scope": known_scope, "description": assignment.description or ""}
        outputs = {"id": assignment.id, "assignment_name": assignment.name,
                   "role_definition_id": assignment.role_definition_id, "scope_id": scope_id,
                   "created_at": _timestamp(assignment.created_on)}
        return Observed(assignment.id, attributes, outputs)

    def _scope_form(self, scope_id: str) -> dict[str, Any]:
        """The manifest's form of an ARM scope: the resource group, or a hub or project in it
        (which of the two, Azure says: GET of the workspace)."""
        if scope_id.lower() == self.resource_group_id.lower():
            return {"resource_group": True}
        foundry = arm.foundry_scope(scope_id)
        if foundry is not None and arm.covers(self.resource_group_id, scope_id):
            return foundry
        prefix = f"{self.resource_group_id}/providers/{arm.WORKSPACES}/"
        name = scope_id[len(prefix):].strip("/")
        if not scope_id.lower().startswith(prefix.lower()) or not name or "/" in name:
            raise BackendError(
                "UnsupportedScope",
                f"role assignment scope {scope_id} is neither resource group {self.resource_group} "
                "nor a hub, project, Foundry account or Foundry project in it",
                hint="foundryctl manages role assignments at the backend's resource group, its hubs, "
                     "projects, Foundry accounts and Foundry projects")
        from azure.ai.ml.entities import Hub

        workspace = read_or_none(lambda: self.clients.ml().workspaces.get(name), f"reading workspace {name}")
        return {"hub": name} if isinstance(workspace, Hub) else {"project": name}

    def read(self, target: Target) -> Observed | None:
        scope, name = self._located(target)
        assignment = read_or_none(lambda: self._operations.get(scope, name),
                                  f"reading role assignment {name} at {scope}")
        return self._observe(assignment, target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        scope, assignment_name_ = split_assignment_id(backend_id)
        assignment = read_or_none(lambda: self._operations.get(scope, assignment_name_),
                                  f"reading role assignment {assignment_name_} at {scope}")
        return self._observe(assignment, None)

    # -- writing -----------------------------------------------------------------------

    def _parameters(self, attributes: dict[str, Any]) -> Any:
        from azure.mgmt.authorization.v2022_04_01.models import (
            RoleAssignmentCreateParameters,
        )

        return RoleAssignmentCreateParameters(
            role_definition_id=self.role_definition_id(self._role(attributes["role"]).id),
            principal_id=attributes["principal"], principal_type=self.principal_type(attributes),
            description=attributes.get("description", ""))

    def _put(self, scope: str, name: str, attributes: dict[str, Any], progress: Progress) -> Any:
        """PUT the assignment, waiting out PrincipalNotFound; an equal assignment under another
        name is adopted."""
        doing = f"assigning {attributes['role']} to {attributes['principal']} at {scope}"
        parameters = self._parameters(attributes)
        started = time.monotonic()
        delay = min(self.config.poll_interval, FIRST_BACKOFF)
        while True:
            try:
                return self._operations.create(scope, name, parameters)
            except sdk_errors() as exc:
                code = error_code(exc)
                if code == "RoleAssignmentExists":
                    return self._adopt(scope, attributes, exc, progress)
                if code == "UnmatchedPrincipalType":
                    actual = _ACTUAL_TYPE.search(azure_message(exc))
                    raise backend_error(exc, doing, hint=(
                        f"set principal_type: {actual.group(1)}, or leave it out to have it read from "
                        "Microsoft Graph" if actual else SET_TYPE)) from None
                if code != "PrincipalNotFound":
                    raise backend_error(exc, doing) from None
                elapsed = time.monotonic() - started
                left = self.config.principal_retry_timeout - elapsed
                if left <= 0:
                    raise BackendError(
                        "PrincipalNotFound",
                        f"{doing}: Entra ID does not know principal {attributes['principal']} "
                        f"(still not found after {elapsed:.1f}s of retries)",
                        hint=PRINCIPAL_HINT) from None
                progress(f"principal {attributes['principal']} not found in Entra ID yet "
                         f"(replication); retrying in {min(delay, left):.1f}s")
                time.sleep(min(delay, left))
                delay = min(delay * 2, MAX_BACKOFF)

    def _adopt(self, scope: str, attributes: dict[str, Any], exc: BaseException, progress: Progress) -> Any:
        """Azure already has this role for this principal at this scope, under another name:
        find it and take it over (its description made the desired one)."""
        principal, role = attributes["principal"], self._role(attributes["role"])
        doing = f"assigning {role.name} to {principal} at {scope}"
        # Assignments of this principal at, above and below the scope; the one wanted is at it.
        of_principal = f"principalId eq '{principal}'"
        listing = calling(f"listing role assignments of {principal} at {scope}",
                          lambda: list(self._operations.list_for_scope(scope, filter=of_principal)))
        existing = next((a for a in listing
                         if (a.scope or "").lower() == scope.lower()
                         and _role_guid(a.role_definition_id or "") == role.id.lower()), None)
        if existing is None:
            raise BackendError(
                "RoleAssignmentExists",
                f"{doing}: Azure says the assignment already exists ({azure_message(exc)}), "
                f"but no assignment of {role.name} to {principal} at exactly this scope could be read",
                hint=f"look for it with `az role assignment list --assignee {principal} --scope {scope}`, "
                     "then `foundryctl import ADDRESS ID`")
        wanted_type = self.principal_type(attributes)
        if (existing.principal_type or "").lower() != wanted_type.lower():
            raise BackendError(
                "RoleAssignmentConflict",
                f"{doing}: {existing.id} already assigns this role to this principal, but as principal "
                f"type {existing.principal_type} (the manifest says {wanted_type})",
                hint=f"set principal_type: {existing.principal_type} in the manifest, or delete the existing "
                     f"assignment (`az role assignment delete --ids {existing.id}`)")
        progress(f"adopting existing role assignment {existing.name}")
        if (existing.description or "") != attributes.get("description", ""):
            existing = calling(doing, self._operations.create, scope, existing.name, self._parameters(attributes))
        return existing

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        if not catalog.is_guid(a["principal"]):
            raise BackendError(
                "InvalidPrincipalId",
                f"principal {a['principal']!r} is not an Entra ID object id (a GUID)",
                hint="find it with `az ad user show --id USER@DOMAIN --query id -o tsv` (a user), "
                     "`az ad group show` or `az ad sp show`")
        scope, name = split_assignment_id(self.identify(target))
        observed = self._observe(self._put(scope, name, a, progress), a)
        assert observed is not None
        return observed

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        """Only the description changes in place (the rest forces replacement): PUT again
        under the same name."""
        scope, name = self._located(target)
        observed = self._observe(self._put(scope, name, target.attributes, progress), target.attributes)
        assert observed is not None
        return observed

    def delete(self, target: Target, progress: Progress) -> None:
        scope, name = self._located(target)
        # 200 with the assignment, 204 when there was none, 404 when its scope is gone
        unless_absent(lambda: self._operations.delete(scope, name), f"deleting role assignment {name} at {scope}")
