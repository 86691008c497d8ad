"""Hub and Project on the local cloud: both are Machine Learning workspaces."""

from __future__ import annotations

from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.errors import BackendError


class WorkspaceHandler(LocalHandler):
    workspace_kind: str

    def identify(self, target: Target) -> str:
        return arm.workspace_id(self.subscription, self.resource_group, target.name)

    def attributes(self, resource: ArmResource) -> dict[str, Any]:
        props = resource.properties
        return {"display_name": props.get("friendlyName"), "description": props.get("description", ""),
                "tags": dict(resource.tags)}

    def observe(self, resource: ArmResource | None) -> Observed | None:
        if resource is None or resource.kind != self.workspace_kind:
            return None
        props = resource.properties
        outputs = {"id": resource.id, "provisioning_state": resource.provisioning_state,
                   "etag": resource.etag, "workspace_id": props.get("workspaceId"),
                   "location": resource.location, "discovery_url": props.get("discoveryUrl"),
                   "created_at": resource.created_at, "modified_at": resource.modified_at}
        return Observed(resource.id, self.attributes(resource), outputs)

    def read(self, target: Target) -> Observed | None:
        return self.observe(self.cloud.get(target.backend_id or self.identify(target)))

    def read_many(self, targets: list[Target]) -> list[Observed | None]:
        ids = [t.backend_id or self.identify(t) for t in targets]
        found = self.cloud.get_many(ids)
        return [self.observe(found.get(i.lower())) for i in ids]

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self.cloud.get(backend_id))

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        after = target.attributes
        changes = {key: after[key] for key in ("description", "tags") if after.get(key) != before.get(key)}
        if after.get("display_name") is not None and after["display_name"] != before.get("display_name"):
            changes["friendly_name"] = after["display_name"]
        resource = self.cloud.update_workspace(target.backend_id or self.identify(target), **changes)
        observed = self.observe(resource)
        assert observed is not None
        return observed

    def delete(self, target: Target, progress: Progress) -> None:
        self.cloud.delete_workspace(target.backend_id or self.identify(target))

    def _created(self, resource: ArmResource) -> Observed:
        observed = self.observe(resource)
        if observed is None:
            raise BackendError("Conflict", f"{resource.id} exists but is a {resource.kind}")
        return observed


class HubHandler(WorkspaceHandler):
    kind = "Hub"
    workspace_kind = "Hub"

    def attributes(self, resource: ArmResource) -> dict[str, Any]:
        return {"location": resource.location, **super().attributes(resource)}

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        resource = self.cloud.create_workspace(
            self.subscription, self.resource_group, target.name, kind="Hub", location=a["location"],
            friendly_name=a.get("display_name"), description=a.get("description", ""),
            tags=a.get("tags"))
        return self._created(resource)


class ProjectHandler(WorkspaceHandler):
    kind = "Project"
    workspace_kind = "Project"

    def attributes(self, resource: ArmResource) -> dict[str, Any]:
        hub = arm.last_segment(resource.parent_id) if resource.parent_id else None
        return {"hub": hub, **super().attributes(resource)}

    def observe(self, resource: ArmResource | None) -> Observed | None:
        observed = super().observe(resource)
        if observed is not None and resource is not None:
            observed.outputs["hub_id"] = resource.parent_id
        return observed

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        hub_id = arm.workspace_id(self.subscription, self.resource_group, a["hub"])
        resource = self.cloud.create_workspace(
            self.subscription, self.resource_group, target.name, kind="Project", hub_id=hub_id,
            friendly_name=a.get("display_name"), description=a.get("description", ""),
            tags=a.get("tags"))
        return self._created(resource)
