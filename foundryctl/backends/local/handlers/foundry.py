"""FoundryAccount and FoundryProject on the local cloud: Cognitive Services accounts of kind
AIServices and their `accounts/projects`, with Azure's soft delete of accounts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.errors import BackendError
from foundryctl.kinds.foundry import SOFT_DELETE_HOURS, held_account_note

# Manifest attribute -> ARM property, for what a PATCH can change in place.
ACCOUNT_PROPERTIES = {"sku": "sku", "public_network_access": "publicNetworkAccess",
                      "disable_local_auth": "disableLocalAuth", "identity": "identity"}


class FoundryAccountHandler(LocalHandler):
    kind = "FoundryAccount"

    def identify(self, target: Target) -> str:
        return arm.cognitive_account_id(self.subscription, self.resource_group, target.name)

    def observe(self, resource: ArmResource | None, last_known: dict[str, Any]) -> Observed | None:
        if resource is None or resource.type != arm.COGNITIVE_ACCOUNTS:
            return None
        props = resource.properties
        attributes = {"location": resource.location, "custom_subdomain_name": props["customSubDomainName"],
                      "sku": props["sku"], "public_network_access": props["publicNetworkAccess"],
                      "disable_local_auth": props["disableLocalAuth"], "identity": props["identity"]["type"],
                      # How it was created, not a property Azure keeps.
                      "restore_soft_deleted": bool(last_known.get("restore_soft_deleted", False)),
                      "tags": dict(resource.tags)}
        outputs = {"id": resource.id, "kind": resource.kind, "endpoint": props["endpoint"],
                   "provisioning_state": resource.provisioning_state, "etag": resource.etag,
                   "principal_id": props["identity"].get("principalId"),
                   "soft_delete": not self.backend.config.purge_on_delete,
                   "created_at": resource.created_at, "modified_at": resource.modified_at}
        return Observed(resource.id, attributes, outputs)

    def read(self, target: Target) -> Observed | None:
        return self.observe(self.cloud.get(target.backend_id or self.identify(target)), target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self.cloud.get(backend_id), {})

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        resource, recovered = self.cloud.create_cognitive_account(
            self.subscription, self.resource_group, target.name, location=a["location"],
            custom_subdomain_name=a["custom_subdomain_name"], sku=a["sku"],
            public_network_access=a["public_network_access"], disable_local_auth=a["disable_local_auth"],
            identity=a["identity"], tags=a.get("tags"), restore=a.get("restore_soft_deleted", False))
        observed = self.observe(resource, a)
        assert observed is not None
        if recovered:
            # Back as it was when deleted: bring it to what the manifest says.
            progress(f"recovered soft-deleted account {target.name}")
            return self.update(Target(target.address, target.kind, target.name, a, resource.id),
                               observed.attributes, progress)
        return observed

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        after = target.attributes
        changes: dict[str, Any] = {prop: after[key] for key, prop in ACCOUNT_PROPERTIES.items()
                                   if after.get(key) != before.get(key)}
        if after.get("tags", {}) != before.get("tags"):
            changes["tags"] = after.get("tags", {})
        resource = self.cloud.update_cognitive_account(target.backend_id or self.identify(target), **changes)
        observed = self.observe(resource, after)
        assert observed is not None
        return observed

    def soft_delete_retention(self, target: Target) -> timedelta | None:
        return None if self.backend.config.purge_on_delete else timedelta(hours=SOFT_DELETE_HOURS)

    def soft_deleted_note(self, target: Target, deleted_at: str, until: str) -> tuple[str, bool]:
        return held_account_note(target.name, bool(target.attributes.get("restore_soft_deleted")), deleted_at, until)

    def delete_notes(self, observed: Observed) -> list[str]:
        if self.backend.config.purge_on_delete:
            return ["purged: deleted permanently (purge_on_delete: true)"]
        return [f"Azure soft-deletes it: recoverable for {SOFT_DELETE_HOURS} hours, the name and custom "
                "subdomain stay taken (purge_on_delete: true in the backend block frees them)"]

    def delete(self, target: Target, progress: Progress) -> None:
        purge = self.backend.config.purge_on_delete
        if self.cloud.delete_cognitive_account(target.backend_id or self.identify(target), purge=purge):
            progress("purged" if purge else f"soft-deleted: recoverable for {SOFT_DELETE_HOURS} hours")


class FoundryProjectHandler(LocalHandler):
    kind = "FoundryProject"

    def identify(self, target: Target) -> str:
        account = arm.cognitive_account_id(self.subscription, self.resource_group, target.attributes["account"])
        return arm.account_project_id(account, target.name)

    def observe(self, resource: ArmResource | None) -> Observed | None:
        if resource is None or resource.type != arm.ACCOUNT_PROJECTS:
            return None
        props = resource.properties
        attributes = {"account": arm.last_segment(resource.parent_id or ""),
                      "display_name": props["displayName"], "description": props.get("description", ""),
                      "identity": props["identity"]["type"], "tags": dict(resource.tags)}
        outputs = {"id": resource.id, "account_id": resource.parent_id, "location": resource.location,
                   "endpoints": dict(props["endpoints"]), "is_default": props["isDefault"],
                   "principal_id": props["identity"].get("principalId"),
                   "provisioning_state": resource.provisioning_state, "etag": resource.etag,
                   "created_at": resource.created_at, "modified_at": resource.modified_at}
        return Observed(resource.id, attributes, outputs)

    def _observed(self, resource: ArmResource | None, desired: dict[str, Any]) -> Observed | None:
        observed = self.observe(resource)
        if observed is not None and desired.get("display_name") is None \
                and observed.attributes["display_name"] == arm.last_segment(observed.id):
            observed.attributes["display_name"] = None  # Azure's default: the name itself
        return observed

    def read(self, target: Target) -> Observed | None:
        return self._observed(self.cloud.get(target.backend_id or self.identify(target)), target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        if arm.foundry_scope(backend_id) is None or "/projects/" not in backend_id.lower():
            raise BackendError("InvalidResourceId", f"{backend_id} is not a Foundry project id",
                               hint="ids look like .../providers/Microsoft.CognitiveServices/accounts/"
                                    "ACCOUNT/projects/PROJECT")
        return self._observed(self.cloud.get(backend_id), {})

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        account = arm.cognitive_account_id(self.subscription, self.resource_group, a["account"])
        resource = self.cloud.create_account_project(
            account, target.name, display_name=a.get("display_name"), description=a.get("description", ""),
            identity=a["identity"], tags=a.get("tags"))
        observed = self._observed(resource, a)
        assert observed is not None
        return observed

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        after = target.attributes
        changes: dict[str, Any] = {}
        if after.get("display_name") != before.get("display_name"):
            changes["displayName"] = after.get("display_name")
        if after.get("description", "") != before.get("description"):
            changes["description"] = after.get("description", "")
        if after.get("identity") != before.get("identity"):
            changes["identity"] = after["identity"]
        if after.get("tags", {}) != before.get("tags"):
            changes["tags"] = after.get("tags", {})
        resource = self.cloud.update_account_project(target.backend_id or self.identify(target), **changes)
        observed = self._observed(resource, after)
        assert observed is not None
        return observed

    def delete(self, target: Target, progress: Progress) -> None:
        self.cloud.delete_account_project(target.backend_id or self.identify(target))
