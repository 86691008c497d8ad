"""Hub and Project on the local cloud: both are Machine Learning workspaces."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.errors import BackendError
from foundryctl.kinds.hub import SOFT_DELETE_DAYS, held_name_note


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

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self.cloud.get(backend_id))

    def soft_delete_retention(self, target: Target) -> timedelta | None:
        return None if self.backend.config.purge_on_delete else timedelta(days=SOFT_DELETE_DAYS)

    def soft_deleted_note(self, target: Target, deleted_at: str, until: str) -> tuple[str, bool]:
        return held_name_note(self.kind, target.name, target.attributes.get("on_soft_deleted"), deleted_at, until,
                              recover_in_portal=False)

    def create_notes(self, target: Target) -> list[str]:
        choice = target.attributes.get("on_soft_deleted")
        if choice in ("purge", "recover"):
            return [f"if the name belongs to a workspace soft-deleted in the last 14 days, apply "
                    f"{'purges it first' if choice == 'purge' else 'recovers it'} (on_soft_deleted: {choice})"]
        return []

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        after = target.attributes
        changes = {key: after[key] for key in ("description", "tags") if after.get(key) != before.get(key)}
        if after.get("display_name") is not None and after["display_name"] != before.get("display_name"):
            changes["friendly_name"] = after["display_name"]
        resource = self.cloud.update_workspace(target.backend_id or self.identify(target), **changes)
        observed = self.observe_as(resource, target.attributes)
        assert observed is not None
        return observed

    def observe_as(self, resource: ArmResource | None, last_known: dict[str, Any]) -> Observed | None:
        """`observe`, with foundryctl's own setting (on_soft_deleted: no field in the cloud)
        as last applied."""
        observed = self.observe(resource)
        if observed is not None and "on_soft_deleted" in last_known:
            observed.attributes["on_soft_deleted"] = last_known["on_soft_deleted"]
        return observed

    def read(self, target: Target) -> Observed | None:
        return self.observe_as(self.cloud.get(target.backend_id or self.identify(target)), target.attributes)

    def read_many(self, targets: list[Target]) -> list[Observed | None]:
        ids = [t.backend_id or self.identify(t) for t in targets]
        found = self.cloud.get_many(ids)
        return [self.observe_as(found.get(i.lower()), t.attributes) for i, t in zip(ids, targets)]

    def delete(self, target: Target, progress: Progress) -> None:
        purge = self.backend.config.purge_on_delete
        if self.cloud.delete_workspace(target.backend_id or self.identify(target), purge=purge) and not purge:
            progress("soft-deleted: recoverable for 14 days; the name stays taken until purged")

    def delete_notes(self, observed: Observed) -> list[str]:
        if self.backend.config.purge_on_delete:
            return []
        return ["soft-deleted, as Azure does (purge_on_delete: false): the name stays taken for 14 days "
                "unless the resource sets on_soft_deleted: purge or recover"]

    def _create(self, target: Target, progress: Progress, **settings: Any) -> Observed:
        a = target.attributes
        choice = a.get("on_soft_deleted") or "fail"
        resource = self.cloud.create_workspace(
            self.subscription, self.resource_group, target.name, friendly_name=a.get("display_name"),
            description=a.get("description", ""), tags=a.get("tags"), on_soft_deleted=choice, **settings)
        observed = self.observe_as(resource, a)
        if observed is None:
            raise BackendError("Conflict", f"{resource.id} exists but is a {resource.kind}")
        if choice == "recover" and observed.attributes != a:
            # a recovered workspace comes back as it was deleted
            progress(f"recovered soft-deleted {self.kind.lower()} {target.name}; updating what differs")
            observed = self.update(Target(target.address, target.kind, target.name, a, observed.id),
                                   observed.attributes, progress)
        return observed


class HubHandler(WorkspaceHandler):
    kind = "Hub"
    workspace_kind = "Hub"

    def attributes(self, resource: ArmResource) -> dict[str, Any]:
        return {"location": resource.location, **super().attributes(resource)}

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._create(target, progress, kind="Hub", location=target.attributes["location"])


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
        hub_id = arm.workspace_id(self.subscription, self.resource_group, target.attributes["hub"])
        return self._create(target, progress, kind="Project", hub_id=hub_id)
