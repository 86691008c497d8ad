"""RoleAssignment on the local cloud: uuid5-named, idempotent, scoped by ARM id."""

from __future__ import annotations

from typing import Any

from foundryctl import catalog
from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.errors import BackendError
from foundryctl.kinds.role_assignment import assignment_name


class RoleAssignmentHandler(LocalHandler):
    kind = "RoleAssignment"

    def scope_id(self, scope: dict[str, Any]) -> str:
        return arm.scope_resource_id(self.subscription, self.resource_group, scope)

    def _role(self, name: str) -> catalog.RoleDefinition:
        role = catalog.find_role(name)
        if role is None:
            raise BackendError("RoleDefinitionDoesNotExist", f"unknown role {name!r}")
        return role

    def identify(self, target: Target) -> str:
        a = target.attributes
        scope = self.scope_id(a["scope"])
        return arm.role_assignment_id(scope, assignment_name(scope, a["principal"], self._role(a["role"]).id))

    def observe(self, resource: ArmResource | None, known_scope: dict[str, Any] | None = None) -> Observed | None:
        """`known_scope` (the manifest's form of the scope) saves a lookup when it matches."""
        if resource is None:
            return None
        props = resource.properties
        role = catalog.find_role(arm.last_segment(props["roleDefinitionId"]))
        scope_id = props["scope"]
        if known_scope is None or self.scope_id(known_scope).lower() != scope_id.lower():
            known_scope = self._scope_form(scope_id)
        attributes = {"principal": props["principalId"], "principal_type": props["principalType"],
                      "role": role.name if role else props["roleDefinitionId"],
                      "scope": known_scope, "description": props.get("description", "")}
        outputs = {"id": resource.id, "assignment_name": resource.name,
                   "role_definition_id": props["roleDefinitionId"], "scope_id": scope_id,
                   "created_at": resource.created_at}
        return Observed(resource.id, attributes, outputs)

    def _scope_form(self, scope_id: str) -> dict[str, Any]:
        if "/providers/" not in scope_id:
            return {"resource_group": True}
        foundry = arm.foundry_scope(scope_id)
        if foundry is not None:
            return foundry
        workspace = self.cloud.get(scope_id)
        kind = (workspace.kind if workspace else "project").lower()
        return {kind: arm.last_segment(scope_id)}

    def read(self, target: Target) -> Observed | None:
        return self.read_many([target])[0]

    def read_many(self, targets: list[Target]) -> list[Observed | None]:
        ids = [t.backend_id or self.identify(t) for t in targets]
        found = self.cloud.get_many(ids)
        return [self.observe(found.get(i.lower()), t.attributes.get("scope")) for i, t in zip(ids, targets)]

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self.cloud.get(backend_id))

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        resource = self.cloud.create_role_assignment(
            self.subscription, self.scope_id(a["scope"]), a["principal"], a["principal_type"] or "User",
            self._role(a["role"]).id, a.get("description", ""))
        observed = self.observe(resource)
        assert observed is not None
        return observed

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        resource = self.cloud.update_role_assignment(target.backend_id or self.identify(target),
                                                     description=target.attributes.get("description", ""))
        observed = self.observe(resource)
        assert observed is not None
        return observed

    def delete(self, target: Target, progress: Progress) -> None:
        self.cloud.delete_role_assignment(target.backend_id or self.identify(target))
