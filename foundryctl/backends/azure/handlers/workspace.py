"""Hub and Project on Azure: Machine Learning workspaces of kind Hub and Project, through
azure-ai-ml's `MLClient.workspaces` (resource-group scoped).

What azure-ai-ml 1.35 sends (the contract tests assert it; workspaces at api-version
2024-10-01-preview):
- get: GET .../workspaces/{name}.
- begin_create: GET the workspace (404), then an ARM template deployment through its own
  vendored ResourceManagementClient: PUT .../resourcegroups/{rg}/providers/Microsoft.Resources/
  deployments/{name}-{random number} (api-version 2020-06-01) answered 201 + Azure-AsyncOperation,
  polled in a background thread while the calling thread lists the deployment's operations
  (GET .../resourcegroups/{rg}/deployments/{deployment}/operations) every 5 s to log progress;
  then GET the workspace. A hub's template also makes its storage account and key vault.
  For a project the SDK first GETs its hub (and copies the hub's location).
- begin_update: GET, then PATCH .../workspaces/{name} with the fields set on the entity, polled.
- begin_delete: GET, then DELETE .../workspaces/{name}?forceToPurge=true|false, polled.

A name soft-deleted within the retention period (14 days) cannot be reused: the template
deployment fails ("Soft-deleted workspace exists. Please purge or recover it."). azure-ai-ml has
no call that lists soft-deleted workspaces (Learn: the portal's "Recently deleted" view), so the
plan warns only about the names foundryctl soft-deleted itself (plan/soft_deleted.py, from the
state's history); the apply-time error is recognised, and the resource's `on_soft_deleted` decides: fail (default),
purge (Workspaces_Delete with forceToPurge=true on the name, then the deployment again), or
recover, which neither the SDK nor the REST spec offers: it fails saying to recover it in the
portal, after which apply adopts the recovered workspace.

Before create, update and delete this handler reads the workspace itself as well: an existing
workspace is adopted with an update that sends only what differs (the SDK's own adoption merges
tags and would touch a workspace of the other kind), and delete never removes a workspace of the
other kind that took the name.

azure-ai-ml's entities drop a few things Azure returns: provisioningState (never surfaced), and
for hubs the workspace GUID and discovery URL (Hub's constructor loses them), so a hub's
`workspace_id` and `discovery_url` outputs are None; a project's are set.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from foundryctl import catalog
from foundryctl.backends import arm
from foundryctl.backends.azure.config import AzureBackendConfig
from foundryctl.backends.azure.errors import (
    backend_error,
    calling,
    is_not_found,
    read_or_none,
    sdk_errors,
)
from foundryctl.backends.azure.handlers.base import AzureHandler
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.errors import BackendError
from foundryctl.kinds.hub import SOFT_DELETE_DAYS, held_name_note

if TYPE_CHECKING:
    from azure.ai.ml.entities import Workspace


# Tags the SDK adds on create ("sdk-v2-1.35.2"): kept on Azure, never shown nor diffed.
HIDDEN_TAGS = frozenset({"createdByToolkit"})
SOFT_DELETED = "soft-deleted: recoverable for 14 days; the name stays taken until purged"
PURGED = "purged: deleted permanently, the name is free again"
SOFT_DELETED_CHOICES = ("set on_soft_deleted: purge on the resource (the soft-deleted workspace's data "
                        "is deleted permanently) or recover it in the portal (Azure Machine Learning > "
                        "Recently deleted; apply then adopts it), or pick a new name")


def is_soft_deleted_conflict(exc: BaseException) -> bool:
    """Whether Azure refused a create because the name belongs to a soft-deleted workspace
    (the message is in the failed deployment's nested details)."""
    error = getattr(exc, "error", None)
    texts = [str(exc)]
    while error is not None:
        texts.append(str(getattr(error, "message", "") or ""))
        details = getattr(error, "details", None)
        error = details[0] if details else None
    text = " ".join(texts).lower()
    return "soft-deleted workspace" in text or "soft deleted workspace" in text


def soft_delete(config: AzureBackendConfig) -> bool:
    """Whether deleting a hub or project leaves it soft-deleted (Azure's default) rather
    than purged."""
    return not config.purge_on_delete


def delete_note(config: AzureBackendConfig) -> str:
    """What a delete of a hub or project does, in the user's words."""
    return SOFT_DELETED if soft_delete(config) else PURGED


def _plain(value: Any) -> str | None:
    """A REST enum member (a str subclass whose str() is "Type.MEMBER" on Python 3.11+) as
    its plain value."""
    return None if value is None else str(getattr(value, "value", value))


def _defaulted(value: str | None, name: str, last_known: str | None, unset: str | None) -> str | None:
    """Azure's value of a setting the SDK fills with the workspace name when the manifest
    leaves it empty (friendlyName, description): the manifest's `unset` when it is that
    default, unless the name itself is what was applied."""
    if value in (None, "", name):
        return name if last_known == name else unset
    return value


class WorkspaceHandler(AzureHandler):
    # Attributes an existing workspace must already have to be adopted (they force replacement).
    fixed: ClassVar[tuple[str, ...]] = ()

    # -- reading ---------------------------------------------------------------------------

    def identify(self, target: Target) -> str:
        return self.workspace_id(target.name)

    def _name(self, target: Target) -> str:
        return arm.last_segment(target.backend_id) if target.backend_id else target.name

    def _entity(self) -> type[Workspace]:
        raise NotImplementedError

    def _get(self, name: str) -> Workspace | None:
        """The workspace named `name` of any kind, or None."""
        return read_or_none(lambda: self.clients.ml().workspaces.get(name),
                            f"reading {self.kind.lower()} {name}")

    def _ours(self, workspace: Workspace | None) -> bool:
        return workspace is not None and isinstance(workspace, self._entity())

    def attributes(self, workspace: Workspace, last_known: dict[str, Any]) -> dict[str, Any]:
        name = workspace.name
        # foundryctl's own setting (Azure has no field for it): as last applied, when it was
        own = {"on_soft_deleted": last_known["on_soft_deleted"]} if "on_soft_deleted" in last_known else {}
        return {**own, 
            "display_name": _defaulted(workspace.display_name, name, last_known.get("display_name"), None),
            "description": _defaulted(workspace.description, name, last_known.get("description"), ""),
            "tags": {k: v for k, v in (workspace.tags or {}).items() if k not in HIDDEN_TAGS},
        }

    def outputs(self, workspace: Workspace) -> dict[str, Any]:
        return {
            "id": workspace.id,
            # The workspace GUID: azure-ai-ml keeps it only in this attribute (its own
            # MLClient reads it the same way); deployments need it.
            "workspace_id": getattr(workspace, "_workspace_id", None) or None,
            "location": workspace.location,
            "discovery_url": workspace.discovery_url,
            "soft_delete": soft_delete(self.config),
        }

    def observe(self, workspace: Workspace | None, last_known: dict[str, Any]) -> Observed | None:
        if workspace is None or not self._ours(workspace):
            return None
        return Observed(workspace.id or self.workspace_id(workspace.name),
                        self.attributes(workspace, last_known), self.outputs(workspace))

    def read(self, target: Target) -> Observed | None:
        return self.observe(self._get(self._name(target)), target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        workspace_name = arm.last_segment(backend_id)
        if backend_id.rstrip("/").lower() != self.workspace_id(workspace_name).lower():
            raise BackendError("InvalidResourceId", f"{backend_id} is not a workspace in resource group "
                               f"{self.resource_group}",
                               hint=f"expected {self.workspace_id('NAME')}")
        return self.observe(self._get(workspace_name), {})

    # -- writing ---------------------------------------------------------------------------

    def _new_entity(self, target: Target) -> Workspace:
        raise NotImplementedError

    def _existing(self, name: str, doing: str) -> Workspace | None:
        """The workspace that has the name, refusing one of the other kind."""
        workspace = self._get(name)
        if workspace is not None and not self._ours(workspace):
            other = type(workspace).__name__
            raise BackendError("Conflict", f"{doing}: a {other} workspace named {name} already exists in "
                               f"resource group {self.resource_group}",
                               hint="workspace names are unique per resource group: pick another name")
        return workspace

    def create(self, target: Target, progress: Progress) -> Observed:
        name = target.name
        doing = f"creating {self.kind.lower()} {name}"
        existing = self._existing(name, doing)
        if existing is not None:
            before = self.attributes(existing, target.attributes)
            for key in self.fixed:
                if before.get(key) != target.attributes.get(key):
                    raise BackendError("Conflict", f"{doing}: it exists with {key} {before.get(key)}, the "
                                       f"manifest says {target.attributes.get(key)}",
                                       hint=f"{key} cannot change in place: import it and let the plan "
                                            "replace it, or pick another name")
            progress(f"{self.kind.lower()} {name} exists: adopting it")
            return self._update(target, existing, before, progress)
        entity = self._new_entity(target)
        progress(self._creating_message(name))
        try:
            created = self._deploy(entity)
        except sdk_errors() as exc:
            if not is_soft_deleted_conflict(exc):
                raise self._deployment_error(exc, doing) from None
            choice = target.attributes.get("on_soft_deleted") or "fail"
            if choice != "purge":
                raise self._soft_deleted_error(name, doing, choice) from None
            self._purge(name, doing, progress)
            try:
                created = self._deploy(self._new_entity(target))
            except sdk_errors() as again:
                raise self._deployment_error(again, doing) from None
        observed = self.observe(created, target.attributes)
        if observed is None:
            raise BackendError("Conflict", f"{doing}: Azure answered with a workspace of another kind")
        return observed

    def _deploy(self, entity: Workspace) -> Workspace:
        return self.clients.ml().workspaces.begin_create(entity).result()

    def _deployment_error(self, exc: BaseException, doing: str) -> BackendError:
        return backend_error(exc, doing, nested_hint=(
            "the ARM template deployment that creates the workspace failed: its operations are "
            f"in the portal under resource group {self.resource_group}, Deployments"))

    def _soft_deleted_error(self, name: str, doing: str, choice: str) -> BackendError:
        if choice == "recover":
            return BackendError(
                "SoftDeletedWorkspaceExists",
                f"{doing}: the name belongs to a soft-deleted workspace, and on_soft_deleted: recover "
                "cannot be done from here: azure-ai-ml and the workspaces REST API have no recover "
                "operation", hint=("recover it in the portal (Azure Machine Learning > Recently deleted > "
                                   "Recover), then apply again: the recovered workspace is adopted; or set "
                                   "on_soft_deleted: purge, or pick a new name"))
        return BackendError(
            "SoftDeletedWorkspaceExists",
            f"{doing}: the name belongs to a workspace soft-deleted in the last 14 days (Azure: "
            "\"Soft-deleted workspace exists. Please purge or recover it.\")", hint=SOFT_DELETED_CHOICES)

    def _purge(self, name: str, doing: str, progress: Progress) -> None:
        """Delete the soft-deleted workspace for good. MLClient.workspaces.begin_delete reads
        the workspace first, which a soft-deleted one is not (404): the generated client's
        Workspaces_Delete with forceToPurge=true goes straight to it."""
        progress(f"{self.kind.lower()} {name} is soft-deleted: purging it (on_soft_deleted: purge)")
        operations = self.clients.ml().workspaces._operation  # the SDK's generated REST client
        try:
            operations.begin_delete(resource_group_name=self.resource_group, workspace_name=name,
                                    force_to_purge=True).result()
        except sdk_errors() as exc:
            if not is_not_found(exc):
                raise backend_error(exc, f"{doing}: purging the soft-deleted workspace",
                                    hint="purge it in the portal (Recently deleted > Permanently delete), "
                                         "then apply again") from None

    def soft_delete_retention(self, target: Target) -> timedelta | None:
        return timedelta(days=SOFT_DELETE_DAYS) if soft_delete(self.config) else None

    def soft_deleted_note(self, target: Target, deleted_at: str, until: str) -> tuple[str, bool]:
        return held_name_note(self.kind, target.name, target.attributes.get("on_soft_deleted"), deleted_at, until,
                              recover_in_portal=True)

    def create_notes(self, target: Target) -> list[str]:
        choice = target.attributes.get("on_soft_deleted")
        if choice == "purge":
            return ["if the name belongs to a workspace soft-deleted in the last 14 days, apply purges it "
                    "first (on_soft_deleted: purge; its data is lost)"]
        if choice == "recover":
            return ["if the name belongs to a soft-deleted workspace, apply stops: Azure recovers "
                    "workspaces only in the portal (on_soft_deleted: recover); after that apply adopts it"]
        return []

    def _creating_message(self, name: str) -> str:
        return f"deploying {self.kind.lower()} {name} (an ARM template deployment; takes minutes)"

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        name = self._name(target)
        doing = f"updating {self.kind.lower()} {name}"
        existing = self._existing(name, doing)
        if existing is None:
            raise BackendError("ResourceNotFound", f"{doing}: it does not exist any more",
                               hint="run plan again: it will be created")
        return self._update(target, existing, before, progress)

    def _update(self, target: Target, existing: Workspace, before: dict[str, Any],
                progress: Progress) -> Observed:
        """PATCH only what differs: description, display name, tags (location, hub and name
        force replacement and never get here)."""
        from azure.ai.ml.entities import Workspace

        name = existing.name
        doing = f"updating {self.kind.lower()} {name}"
        after = target.attributes
        changes: dict[str, Any] = {}
        if after.get("description", "") != before.get("description"):
            # Azure keeps an empty description; the SDK only fills it on create.
            changes["description"] = after.get("description", "")
        if after.get("display_name") is not None and after["display_name"] != before.get("display_name"):
            changes["display_name"] = after["display_name"]
        if after.get("tags", {}) != before.get("tags"):
            # PATCH replaces the whole tag set: keep the SDK's hidden tags as they are.
            hidden = {k: v for k, v in (existing.tags or {}).items() if k in HIDDEN_TAGS}
            changes["tags"] = {**hidden, **after.get("tags", {})}
        if changes:
            progress(f"updating {', '.join(sorted(changes))}")
            # A bare Workspace: every field left None stays out of the PATCH body. Its tags
            # default to {}, which would PATCH every tag away: None unless they change.
            patch = Workspace(name=name, **changes)
            patch.tags = changes.get("tags")
            ml = self.clients.ml()
            calling(doing, lambda: ml.workspaces.begin_update(patch).result())
        observed = self.observe(self._get(name), after)
        if observed is None:
            raise BackendError("ResourceNotFound", f"{doing}: it disappeared while being updated")
        return observed

    def delete_notes(self, observed: Observed) -> list[str]:
        if soft_delete(self.config):
            return [("Azure soft-deletes it: recoverable for 14 days, the name stays taken "
                     "(purge_on_delete: true in the backend block frees it; to create the name again "
                     "meanwhile, set on_soft_deleted: purge on the resource)")]
        return ["purged: deleted permanently (purge_on_delete: true)"]

    def delete(self, target: Target, progress: Progress) -> None:
        name = self._name(target)
        doing = f"deleting {self.kind.lower()} {name}"
        workspace = self._get(name)
        if not self._ours(workspace):
            return  # gone already (or the name now belongs to a workspace that is not ours)
        ml = self.clients.ml()
        try:
            ml.workspaces.begin_delete(name, delete_dependent_resources=False,
                                       permanently_delete=self.config.purge_on_delete).result()
        except sdk_errors() as exc:
            if not is_not_found(exc):
                raise backend_error(exc, doing) from None
            return  # deleted meanwhile
        progress(delete_note(self.config))


class HubHandler(WorkspaceHandler):
    kind = "Hub"
    fixed = ("location",)

    def _entity(self) -> type[Workspace]:
        from azure.ai.ml.entities import Hub

        return Hub

    def attributes(self, workspace: Workspace, last_known: dict[str, Any]) -> dict[str, Any]:
        location = workspace.location or ""
        return {"location": catalog.normalize_region(location) or location,
                **super().attributes(workspace, last_known)}

    def outputs(self, workspace: Workspace) -> dict[str, Any]:
        return {**super().outputs(workspace), "storage_account": workspace.storage_account,
                "key_vault": workspace.key_vault}

    def _new_entity(self, target: Target) -> Workspace:
        from azure.ai.ml.entities import Hub

        a = target.attributes
        # An empty description or display name is filled with the name by the SDK.
        return Hub(name=target.name, location=a["location"], display_name=a.get("display_name"),
                   description=a.get("description") or None, tags=dict(a.get("tags") or {}),
                   resource_group=self.resource_group)

    def _creating_message(self, name: str) -> str:
        return (f"deploying hub {name} with its storage account and key vault "
                "(an ARM template deployment; takes minutes)")


class ProjectHandler(WorkspaceHandler):
    kind = "Project"
    fixed = ("hub",)

    def _entity(self) -> type[Workspace]:
        from azure.ai.ml.entities import Project

        return Project

    def attributes(self, workspace: Workspace, last_known: dict[str, Any]) -> dict[str, Any]:
        hub_id = getattr(workspace, "hub_id", None) or ""
        return {"hub": arm.last_segment(hub_id) or None,
                **super().attributes(workspace, last_known)}

    def outputs(self, workspace: Workspace) -> dict[str, Any]:
        return {**super().outputs(workspace), "hub_id": getattr(workspace, "hub_id", None) or None}

    def _new_entity(self, target: Target) -> Workspace:
        from azure.ai.ml.entities import Hub, Project

        a = target.attributes
        hub_name = a["hub"]
        hub = self._get(hub_name)
        if not isinstance(hub, Hub):
            raise BackendError("HubNotFound", f"creating project {target.name}: hub {hub_name} does not "
                               f"exist in resource group {self.resource_group}",
                               hint="create the hub first (declare it in the manifest)")
        # A project lives in its hub's region, with its hub's network setting.
        return Project(name=target.name, hub_id=self.workspace_id(hub_name), location=hub.location,
                       display_name=a.get("display_name"), description=a.get("description") or None,
                       tags=dict(a.get("tags") or {}), resource_group=self.resource_group,
                       public_network_access=_plain(hub.public_network_access))

    def _deploy(self, entity: Workspace) -> Workspace:
        """azure-ai-ml's WorkspaceOperations.begin_create reads the hub again and copies its
        public_network_access into the project as the REST enum member; azure-mgmt-resource's
        serializer then writes str() of it into the template parameters, which on Python 3.11+
        is "PublicNetworkAccessType.ENABLED", a value the template's allowedValues (Enabled,
        Disabled) refuse. `_new_entity` has copied the plain value from its own read of the hub,
        so the base class's begin_create (everything else the SDK does) runs without that step."""
        try:
            from azure.ai.ml.operations._workspace_operations_base import WorkspaceOperationsBase
        except ImportError:  # another azure-ai-ml layout: its own begin_create
            return super()._deploy(entity)
        return WorkspaceOperationsBase.begin_create(self.clients.ml().workspaces, entity).result()
