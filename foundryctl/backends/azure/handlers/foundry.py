"""FoundryAccount and FoundryProject on Azure: `Microsoft.CognitiveServices/accounts` (kind
AIServices, allowProjectManagement) and `accounts/projects` at api-version 2025-06-01, sent
through azure-mgmt-resource's generic `resources` operations (the client the backend already
has; azure-mgmt-cognitiveservices would be one more dependency for four calls).

What goes over the wire (the contract tests assert it):
- read: GET {id}?api-version=2025-06-01; 404 is absent.
- create: PUT {id} with location, kind, sku, identity, tags and properties, polled through
  Azure-AsyncOperation; a project's PUT carries its account's location (read first).
- update: PATCH {id} with only what changed, polled.
- delete: DELETE {id}, polled. Azure keeps a deleted account for 48 hours at
  /subscriptions/S/providers/Microsoft.CognitiveServices/locations/L/resourceGroups/G/
  deletedAccounts/NAME; with `purge_on_delete` that is DELETEd too, freeing the name and the
  custom subdomain. Creating a name that is soft-deleted is refused (409
  FlagMustBeSetForRestore) unless the PUT says `restore: true` (`restore_soft_deleted`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from foundryctl import catalog
from foundryctl.backends import arm
from foundryctl.backends.azure.errors import (
    backend_error,
    calling,
    error_code,
    is_not_found,
    read_or_none,
    sdk_errors,
)
from foundryctl.backends.azure.handlers.base import AzureHandler
from foundryctl.backends.base import FieldError, Observed, Progress, Target
from foundryctl.errors import BackendError
from foundryctl.kinds.foundry import SOFT_DELETE_HOURS

API_VERSION = "2025-06-01"
RESTORE_HINT = ("set restore_soft_deleted: true on the FoundryAccount to recover it, purge it "
                "(`az cognitiveservices account purge`, or purge_on_delete: true before the next destroy), "
                f"or pick another name; Azure purges it by itself {SOFT_DELETE_HOURS} hours after the delete")


def _identity_type(resource: Any) -> str:
    identity = getattr(resource, "identity", None)
    kind = getattr(identity, "type", None)
    return str(getattr(kind, "value", kind) or "None")


class _CognitiveHandler(AzureHandler):
    """GET, PUT, PATCH and DELETE of one ARM resource by id, as generic resources."""

    def _get(self, resource_id: str) -> Any:
        return read_or_none(lambda: self.clients.resources.resources.get_by_id(resource_id, api_version=API_VERSION),
                            f"reading {self.kind} {arm.last_segment(resource_id)}")

    def _put(self, resource_id: str, body: Any, doing: str, hint: str | None = None) -> Any:
        operations = self.clients.resources.resources
        try:
            return operations.begin_create_or_update_by_id(
                resource_id, body, api_version=API_VERSION, polling_interval=self.config.poll_interval).result()
        except sdk_errors() as exc:
            raise backend_error(exc, doing, hint=hint if error_code(exc) == "FlagMustBeSetForRestore"
                                else None) from None

    def _patch(self, resource_id: str, body: Any, doing: str) -> Any:
        operations = self.clients.resources.resources
        return calling(doing, lambda: operations.begin_update_by_id(
            resource_id, body, api_version=API_VERSION, polling_interval=self.config.poll_interval).result())

    def _delete(self, resource_id: str, doing: str) -> bool:
        """False when it was gone already."""
        operations = self.clients.resources.resources
        try:
            operations.begin_delete_by_id(resource_id, api_version=API_VERSION,
                                          polling_interval=self.config.poll_interval).result()
        except sdk_errors() as exc:
            if is_not_found(exc):
                return False
            raise backend_error(exc, doing) from None
        return True


class FoundryAccountHandler(_CognitiveHandler):
    kind = "FoundryAccount"

    def account_id(self, name: str) -> str:
        return arm.cognitive_account_id(self.subscription, self.resource_group, name)

    def identify(self, target: Target) -> str:
        return self.account_id(target.name)

    def _ours(self, resource: Any) -> bool:
        return resource is not None and str(resource.kind or "").lower() == "aiservices"

    def observe(self, resource: Any, last_known: dict[str, Any]) -> Observed | None:
        if not self._ours(resource):
            return None
        props = resource.properties or {}
        location = str(resource.location or "")
        attributes = {
            "location": catalog.normalize_region(location) or location,
            "custom_subdomain_name": str(props.get("customSubDomainName") or "").lower() or None,
            "sku": getattr(resource.sku, "name", None),
            "public_network_access": props.get("publicNetworkAccess") or "Enabled",
            "disable_local_auth": bool(props.get("disableLocalAuth", False)),
            "identity": _identity_type(resource),
            # How it was created, not a property Azure returns.
            "restore_soft_deleted": bool(last_known.get("restore_soft_deleted", False)),
            "tags": dict(resource.tags or {}),
        }
        outputs = {"id": resource.id, "kind": resource.kind, "endpoint": props.get("endpoint"),
                   "provisioning_state": props.get("provisioningState"),
                   "allow_project_management": bool(props.get("allowProjectManagement", False)),
                   "principal_id": getattr(resource.identity, "principal_id", None) if resource.identity else None,
                   "soft_delete": not self.config.purge_on_delete}
        return Observed(resource.id or self.account_id(resource.name), attributes, outputs)

    def read(self, target: Target) -> Observed | None:
        return self.observe(self._get(target.backend_id or self.identify(target)), target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        found = arm.foundry_scope(backend_id)
        if found is None or "foundry_project" in found or \
                backend_id.rstrip("/").lower() != self.account_id(found["foundry_account"]).lower():
            raise BackendError("InvalidResourceId", f"{backend_id} is not a Foundry account in resource group "
                               f"{self.resource_group}", hint=f"expected {self.account_id('NAME')}")
        return self.observe(self._get(backend_id), {})

    def _body(self, a: dict[str, Any], restore: bool) -> Any:
        from azure.mgmt.resource.resources.models import GenericResource, Identity, Sku

        properties: dict[str, Any] = {
            "customSubDomainName": a["custom_subdomain_name"], "allowProjectManagement": True,
            "publicNetworkAccess": a["public_network_access"], "disableLocalAuth": a["disable_local_auth"]}
        if restore:
            properties["restore"] = True
        return GenericResource(location=a["location"], kind="AIServices", sku=Sku(name=a["sku"]),
                               identity=Identity(type=a["identity"]), tags=dict(a.get("tags") or {}),
                               properties=properties)

    def _soft_deleted(self, name: str, location: str) -> bool:
        deleted_id = arm.deleted_account_id(self.subscription, location, self.resource_group, name)
        return self._get(deleted_id) is not None

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        resource_id = self.identify(target)
        doing = f"creating Foundry account {target.name}"
        existing = self._get(resource_id)
        if existing is not None:
            if not self._ours(existing):
                raise BackendError("Conflict", f"{doing}: a Cognitive Services account of kind {existing.kind} "
                                   f"has that name in resource group {self.resource_group}",
                                   hint="account names are unique per resource group: pick another name")
            before = self.observe(existing, a)
            assert before is not None
            for key in ("location", "custom_subdomain_name"):
                if before.attributes[key] != a.get(key):
                    raise BackendError("Conflict", f"{doing}: it exists with {key} {before.attributes[key]}, "
                                       f"the manifest says {a.get(key)}",
                                       hint=f"{key} cannot change in place: import it and let the plan "
                                            "replace it, or pick another name")
            progress(f"Foundry account {target.name} exists: adopting it")
            return self.update(Target(target.address, target.kind, target.name, a, resource_id),
                               before.attributes, progress)
        restore = bool(a.get("restore_soft_deleted")) and self._soft_deleted(target.name, a["location"])
        progress(f"recovering soft-deleted Foundry account {target.name}" if restore
                 else f"creating Foundry account {target.name}")
        created = self._put(resource_id, self._body(a, restore), doing, hint=RESTORE_HINT)
        observed = self.observe(created, a)
        if observed is None:
            raise BackendError("Conflict", f"{doing}: Azure answered with an account of kind {created.kind}")
        if restore and observed.attributes != {**observed.attributes, **a}:
            # Recovered as it was when deleted: bring it to what the manifest says.
            return self.update(Target(target.address, target.kind, target.name, a, resource_id),
                               observed.attributes, progress)
        return observed

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        from azure.mgmt.resource.resources.models import GenericResource, Identity, Sku

        after = target.attributes
        resource_id = target.backend_id or self.identify(target)
        changed = {k for k in ("sku", "public_network_access", "disable_local_auth", "identity", "tags")
                   if after.get(k) != before.get(k)}
        if changed:
            progress(f"updating {', '.join(sorted(changed))}")
            properties = {prop: after[key] for key, prop in (("public_network_access", "publicNetworkAccess"),
                                                             ("disable_local_auth", "disableLocalAuth"))
                          if key in changed}
            patch = GenericResource(
                sku=Sku(name=after["sku"]) if "sku" in changed else None,
                identity=Identity(type=after["identity"]) if "identity" in changed else None,
                tags=dict(after.get("tags") or {}) if "tags" in changed else None,
                properties=properties or None)
            self._patch(resource_id, patch, f"updating Foundry account {target.name}")
        observed = self.observe(self._get(resource_id), after)
        if observed is None:
            raise BackendError("ResourceNotFound", f"updating Foundry account {target.name}: it does not "
                               "exist any more", hint="run plan again: it will be created")
        return observed

    lists_soft_deleted = True  # GET .../deletedAccounts/NAME, whoever deleted it

    def soft_delete_retention(self, target: Target) -> timedelta | None:
        return None if self.config.purge_on_delete else timedelta(hours=SOFT_DELETE_HOURS)

    def create_notes(self, target: Target) -> list[str]:
        """A soft-deleted account of this name (deleted by anyone) takes the name until Azure
        purges it: with restore_soft_deleted apply recovers it; without, Azure refuses the
        create, so the plan does first, at that field."""
        from foundryctl.plan.soft_deleted import shown

        a = target.attributes
        deleted = self._get(arm.deleted_account_id(self.subscription, a["location"], self.resource_group,
                                                   target.name))
        if deleted is None:
            return []
        props = getattr(deleted, "properties", None) or {}
        deleted_at, purge_at = props.get("deletionDate"), props.get("scheduledPurgeDate")
        details = [f"deleted {shown(str(deleted_at))}"] if deleted_at else []
        details.append(f"purged by Azure {shown(str(purge_at))}" if purge_at else
                       f"kept up to {SOFT_DELETE_HOURS} hours")
        held = f"Azure holds a soft-deleted Foundry account {target.name} ({', '.join(details)})"
        if a.get("restore_soft_deleted"):
            return [f"{held}: apply recovers it (restore_soft_deleted: true), then brings it to the manifest"]
        raise FieldError("FlagMustBeSetForRestore", f"{held}, so creating it again is refused until then",
                         ("restore_soft_deleted",), hint=RESTORE_HINT)

    def delete_notes(self, observed: Observed) -> list[str]:
        if self.config.purge_on_delete:
            return ["purged: deleted permanently (purge_on_delete: true)"]
        return [f"Azure soft-deletes it: recoverable for {SOFT_DELETE_HOURS} hours, the name and custom "
                "subdomain stay taken (purge_on_delete: true in the backend block frees them)"]

    def delete(self, target: Target, progress: Progress) -> None:
        resource_id = target.backend_id or self.identify(target)
        doing = f"deleting Foundry account {target.name}"
        existing = self._get(resource_id)
        if not self._ours(existing):
            return  # gone already, or the name now belongs to an account that is not ours
        self._delete(resource_id, doing)
        if not self.config.purge_on_delete:
            progress(f"soft-deleted: recoverable for {SOFT_DELETE_HOURS} hours")
            return
        location = catalog.normalize_region(str(existing.location or "")) or str(existing.location)
        deleted_id = arm.deleted_account_id(self.subscription, location, self.resource_group, target.name)
        self._delete(deleted_id, f"purging Foundry account {target.name}")
        progress("purged: the name and custom subdomain are free again")


class FoundryProjectHandler(_CognitiveHandler):
    kind = "FoundryProject"

    def project_id(self, account: str, name: str) -> str:
        return arm.account_project_id(arm.cognitive_account_id(self.subscription, self.resource_group, account),
                                      name)

    def identify(self, target: Target) -> str:
        return self.project_id(target.attributes["account"], target.name)

    def observe(self, resource: Any, last_known: dict[str, Any]) -> Observed | None:
        if resource is None:
            return None
        props = resource.properties or {}
        found = arm.foundry_scope(resource.id or "") or {}
        display_name = props.get("displayName")
        if display_name in (None, "", resource.name) and last_known.get("display_name") != resource.name:
            display_name = None  # Azure's default: none, or the name itself
        attributes = {"account": found.get("foundry_account"), "display_name": display_name,
                      "description": props.get("description") or "", "identity": _identity_type(resource),
                      "tags": dict(resource.tags or {})}
        outputs = {"id": resource.id, "location": resource.location, "endpoints": dict(props.get("endpoints") or {}),
                   "is_default": bool(props.get("isDefault", False)),
                   "provisioning_state": props.get("provisioningState"),
                   "principal_id": getattr(resource.identity, "principal_id", None) if resource.identity else None}
        return Observed(resource.id, attributes, outputs)

    def read(self, target: Target) -> Observed | None:
        return self.observe(self._get(target.backend_id or self.identify(target)), target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        found = arm.foundry_scope(backend_id)
        if found is None or "foundry_project" not in found or backend_id.rstrip("/").lower() != \
                self.project_id(found["foundry_account"], found["foundry_project"]).lower():
            raise BackendError("InvalidResourceId", f"{backend_id} is not a Foundry project in resource group "
                               f"{self.resource_group}", hint=f"expected {self.project_id('ACCOUNT', 'NAME')}")
        return self.observe(self._get(backend_id), {})

    def create(self, target: Target, progress: Progress) -> Observed:
        from azure.mgmt.resource.resources.models import GenericResource, Identity

        a = target.attributes
        doing = f"creating Foundry project {target.name}"
        account_id = arm.cognitive_account_id(self.subscription, self.resource_group, a["account"])
        account = self._get(account_id)
        if account is None:
            raise BackendError("ResourceNotFound", f"{doing}: Foundry account {a['account']} does not exist in "
                               f"resource group {self.resource_group}",
                               hint="create the account first (declare it in the manifest)")
        properties: dict[str, Any] = {"description": a.get("description", "")}
        if a.get("display_name"):
            properties["displayName"] = a["display_name"]
        # A project lives in its account's region.
        body = GenericResource(location=account.location, identity=Identity(type=a["identity"]),
                               tags=dict(a.get("tags") or {}), properties=properties)
        progress(f"creating Foundry project {target.name} in account {a['account']}")
        created = self._put(self.identify(target), body, doing)
        observed = self.observe(created, a)
        assert observed is not None
        return observed

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        from azure.mgmt.resource.resources.models import GenericResource, Identity

        after = target.attributes
        resource_id = target.backend_id or self.identify(target)
        properties: dict[str, Any] = {}
        if after.get("display_name") is not None and after["display_name"] != before.get("display_name"):
            properties["displayName"] = after["display_name"]
        if after.get("description", "") != before.get("description"):
            properties["description"] = after.get("description", "")
        identity = after["identity"] if after.get("identity") != before.get("identity") else None
        tags = after.get("tags", {}) if after.get("tags", {}) != before.get("tags") else None
        if properties or identity or tags is not None:
            patch = GenericResource(properties=properties or None,
                                    identity=Identity(type=identity) if identity else None, tags=tags)
            self._patch(resource_id, patch, f"updating Foundry project {target.name}")
        observed = self.observe(self._get(resource_id), after)
        if observed is None:
            raise BackendError("ResourceNotFound", f"updating Foundry project {target.name}: it does not exist "
                               "any more", hint="run plan again: it will be created")
        return observed

    def delete(self, target: Target, progress: Progress) -> None:
        self._delete(target.backend_id or self.identify(target), f"deleting Foundry project {target.name}")
