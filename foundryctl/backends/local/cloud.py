"""The local cloud: an emulated slice of Azure Resource Manager, kept in SQLite.

Like Azurite for storage, it answers with Azure's shapes and keeps Azure's rules: ARM ids,
etags, provisioning states, provider registration that takes time, regions from the
catalog, hubs that cannot be deleted while they hold projects, immutable properties, role
assignments named uuid5(scope, principal, role) and RBAC evaluated at covering scopes.

It is separate from foundryctl's state on purpose: changing or deleting things here
(the public methods below are the "portal") is drift, and `state rm` forgets without
deleting, exactly as with Azure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from foundryctl import catalog
from foundryctl.backends import arm
from foundryctl.errors import BackendError
from foundryctl.kinds.foundry import SOFT_DELETE_HOURS
from foundryctl.kinds.role_assignment import assignment_name
from foundryctl.private_files import private_directory, tighten_file
from foundryctl.state.lock import current_user
from foundryctl.state.sqlite_store import now_iso

_WORKSPACE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
_COGNITIVE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}$")
_UNSET: Any = object()

NOT_REGISTERED, REGISTERING, REGISTERED, UNREGISTERING = (
    "NotRegistered", "Registering", "Registered", "Unregistering")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    id TEXT PRIMARY KEY COLLATE NOCASE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT,
    location TEXT,
    parent_id TEXT COLLATE NOCASE,
    properties TEXT NOT NULL,
    tags TEXT NOT NULL,
    etag TEXT NOT NULL,
    provisioning_state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_parent ON resources (parent_id);
CREATE INDEX IF NOT EXISTS resources_type ON resources (type);
CREATE TABLE IF NOT EXISTS refs (
    source_id TEXT NOT NULL COLLATE NOCASE,
    target_id TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (source_id, target_id)
);
CREATE INDEX IF NOT EXISTS refs_target ON refs (target_id);
CREATE TABLE IF NOT EXISTS soft_deleted_workspaces (
    id TEXT PRIMARY KEY COLLATE NOCASE,
    resource TEXT NOT NULL,
    deleted_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS providers (
    subscription TEXT NOT NULL COLLATE NOCASE,
    namespace TEXT NOT NULL COLLATE NOCASE,
    state TEXT NOT NULL,
    changed_at REAL NOT NULL,
    PRIMARY KEY (subscription, namespace)
);
"""


# Azure keeps a soft-deleted workspace (and its name) this long unless it is purged.
SOFT_DELETE_RETENTION = 14 * 24 * 3600.0
SOFT_DELETED_MESSAGE = "Soft-deleted workspace exists. Please purge or recover it."


class AuthorizationFailed(BackendError):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__("AuthorizationFailed", message, hint=hint)


@dataclass
class ArmResource:
    id: str
    type: str
    name: str
    kind: str | None
    location: str | None
    parent_id: str | None
    properties: dict[str, Any]
    tags: dict[str, str]
    etag: str
    provisioning_state: str
    created_at: str
    modified_at: str
    created_by: str = field(default="")

    def to_arm(self) -> dict[str, Any]:
        """The resource as ARM's REST API would return it."""
        body: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type,
                                "etag": self.etag, "tags": self.tags,
                                "properties": {**self.properties,
                                               "provisioningState": self.provisioning_state},
                                "systemData": {"createdAt": self.created_at,
                                               "createdBy": self.created_by,
                                               "lastModifiedAt": self.modified_at}}
        if self.kind:
            body["kind"] = self.kind
        if self.location:
            body["location"] = self.location
        return body


class LocalCloud:
    """One emulated Azure control plane in `directory/controlplane.db`."""

    FILE_NAME = "controlplane.db"

    def __init__(self, directory: str | os.PathLike, *, registration_delay: float = 1.0,
                 api_latency: float = 0.0):
        self.directory = Path(directory).resolve()  # stored paths stay valid from any cwd
        self.registration_delay = registration_delay
        self.api_latency = api_latency
        self._mutex = threading.RLock()
        private_directory(self.directory)  # 0700; a directory from an older version is tightened
        path = self.directory / self.FILE_NAME
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        for existing in (path, *self.directory.glob(f"{self.FILE_NAME}-*")):
            tighten_file(existing)  # SQLite's -wal and -shm files take the database's mode
        for area in ("jobs", "endpoints", "datastores"):
            if (self.directory / area).is_dir():
                private_directory(self.directory / area)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('default_subscription', ?)",
                       (str(uuid.uuid4()),))

    def close(self) -> None:
        with self._mutex:
            self._db.close()

    @property
    def default_subscription_id(self) -> str:
        with self._mutex:
            return self._db.execute(
                "SELECT value FROM meta WHERE key = 'default_subscription'").fetchone()[0]

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _request(self) -> Iterator[None]:
        """One write request: a network leg before it is applied and one after (api_latency)."""
        if self.api_latency:
            time.sleep(self.api_latency)
        yield
        if self.api_latency:
            time.sleep(self.api_latency)

    # -- generic reads -------------------------------------------------------------------

    _COLUMNS = ("id, type, name, kind, location, parent_id, properties, tags, etag, "
                "provisioning_state, created_at, modified_at, created_by")

    @staticmethod
    def _resource(row: tuple) -> ArmResource:
        return ArmResource(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                           json.loads(row[7]), row[8], row[9], row[10], row[11], row[12])

    def get(self, resource_id: str) -> ArmResource | None:
        with self._mutex:
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM resources WHERE id = ?",
                                   (resource_id,)).fetchone()
        return self._resource(row) if row else None

    def get_many(self, resource_ids: Iterable[str]) -> dict[str, ArmResource]:
        """Resources by lower-cased id; ids that do not exist are absent (one query, one decode)."""
        query = ("SELECT json_group_array(json_array(id, type, name, kind, location, parent_id, "
                 "json(properties), json(tags), etag, provisioning_state, created_at, modified_at, "
                 "created_by)) FROM resources WHERE id IN (SELECT value FROM json_each(?))")
        with self._mutex:
            blob = self._db.execute(query, (json.dumps(list(resource_ids)),)).fetchone()[0]
        return {row[0].lower(): ArmResource(*row) for row in json.loads(blob)}

    def list(self, type: str | None = None, parent_id: str | None = None) -> list[ArmResource]:
        query, args = f"SELECT {self._COLUMNS} FROM resources WHERE 1=1", []
        if type is not None:
            query += " AND type = ?"
            args.append(type)
        if parent_id is not None:
            query += " AND parent_id = ?"
            args.append(parent_id)
        with self._mutex:
            rows = self._db.execute(query + " ORDER BY rowid", args).fetchall()
        return [self._resource(r) for r in rows]

    def _insert(self, db: sqlite3.Connection, resource: ArmResource) -> None:
        db.execute(f"INSERT INTO resources ({self._COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (resource.id, resource.type, resource.name, resource.kind, resource.location,
                    resource.parent_id, json.dumps(resource.properties), json.dumps(resource.tags),
                    resource.etag, resource.provisioning_state, resource.created_at,
                    resource.modified_at, resource.created_by))

    def _save(self, db: sqlite3.Connection, resource: ArmResource) -> None:
        resource.etag = _etag()
        resource.modified_at = now_iso()
        db.execute("UPDATE resources SET location = ?, parent_id = ?, properties = ?, tags = ?, "
                   "etag = ?, modified_at = ? WHERE id = ?",
                   (resource.location, resource.parent_id, json.dumps(resource.properties),
                    json.dumps(resource.tags), resource.etag, resource.modified_at, resource.id))

    def _get_locked(self, db: sqlite3.Connection, resource_id: str) -> ArmResource | None:
        row = db.execute(f"SELECT {self._COLUMNS} FROM resources WHERE id = ?", (resource_id,)).fetchone()
        return self._resource(row) if row else None

    def _delete_with_assignments(self, db: sqlite3.Connection, resource_id: str) -> None:
        # Azure removes what lives inside the deleted resource (data assets and their
        # versions) and the role assignments whose scope it was.
        prefix = _like_prefix(resource_id.rstrip("/") + "/")
        db.execute("DELETE FROM refs WHERE source_id LIKE ? ESCAPE '\\' OR target_id LIKE ? ESCAPE '\\'",
                   (prefix, prefix))
        db.execute("DELETE FROM resources WHERE id LIKE ? ESCAPE '\\'", (prefix,))
        db.execute("DELETE FROM resources WHERE id = ?", (resource_id,))

    # -- resource providers --------------------------------------------------------------

    def provider_state(self, subscription: str, namespace: str) -> str:
        """NotRegistered, Registering, Registered or Unregistering (time moves them on)."""
        with self._mutex:
            row = self._db.execute("SELECT state, changed_at FROM providers WHERE subscription = ? "
                                   "AND namespace = ?", (subscription, namespace)).fetchone()
        if row is None:
            known = catalog.providers()
            return REGISTERED if namespace.lower() in known.registered_by_default else NOT_REGISTERED
        state, changed_at = row
        if state in (REGISTERING, UNREGISTERING) and time.time() - changed_at >= self.registration_delay:
            settled = REGISTERED if state == REGISTERING else NOT_REGISTERED
            with self._write() as db:
                db.execute("UPDATE providers SET state = ? WHERE subscription = ? AND namespace = ? "
                           "AND state = ?", (settled, subscription, namespace, state))
            return settled
        return state

    def _check_namespace(self, namespace: str) -> str:
        known = catalog.providers()
        canonical = known.canonical.get(namespace.lower())
        if canonical is None:
            raise BackendError("InvalidResourceNamespace",
                               f"The resource namespace '{namespace}' is invalid.",
                               hint="check the spelling; the local backend knows the namespaces in "
                                    "foundryctl/catalog/data/providers.yaml")
        return canonical

    def register_provider(self, subscription: str, namespace: str) -> str:
        canonical = self._check_namespace(namespace)
        with self._request():
            state = self.provider_state(subscription, canonical)
            if state in (REGISTERED, REGISTERING):
                return state
            with self._write() as db:
                db.execute("INSERT OR REPLACE INTO providers (subscription, namespace, state, changed_at) "
                           "VALUES (?, ?, ?, ?)", (subscription, canonical, REGISTERING, time.time()))
        return self.provider_state(subscription, canonical)

    def unregister_provider(self, subscription: str, namespace: str) -> str:
        canonical = self._check_namespace(namespace)
        with self._request():
            state = self.provider_state(subscription, canonical)
            if state in (NOT_REGISTERED, UNREGISTERING):
                return state
            with self._write() as db:
                db.execute("INSERT OR REPLACE INTO providers (subscription, namespace, state, changed_at) "
                           "VALUES (?, ?, ?, ?)", (subscription, canonical, UNREGISTERING, time.time()))
        return self.provider_state(subscription, canonical)

    def require_registered(self, subscription: str, namespace: str) -> None:
        state = self.provider_state(subscription, namespace)
        if state != REGISTERED:
            raise BackendError(
                "MissingSubscriptionRegistration",
                f"The subscription is not registered to use namespace '{namespace}' (it is {state}).",
                hint=f"add `- kind: ProviderRegistration` with `namespace: {namespace}` to the manifest")

    # -- workspaces (hubs and projects) --------------------------------------------------

    def create_workspace(self, subscription: str, resource_group: str, name: str, *, kind: str,
                         location: str | None = None, hub_id: str | None = None,
                         friendly_name: str | None = None, description: str = "",
                         tags: dict[str, str] | None = None,
                         on_soft_deleted: str = "fail") -> ArmResource:
        """The new workspace. A name soft-deleted within the retention period is refused, as
        Azure does, unless `on_soft_deleted` is purge (it is forgotten) or recover (it comes
        back with the settings it had: the caller updates what differs)."""
        if not _WORKSPACE_NAME.match(name):
            raise BackendError("InvalidWorkspaceName",
                               f"Workspace name '{name}' is invalid: 3-33 letters, digits, '-' or '_', "
                               "starting with a letter or digit.")
        resource_id = arm.workspace_id(subscription, resource_group, name)
        with self._request(), self._write() as db:
            existing = self._get_locked(db, resource_id)
            if existing is not None:
                raise BackendError("Conflict", f"A workspace named '{name}' ({existing.kind}) already "
                                   f"exists in resource group '{resource_group}'.")
            db.execute("DELETE FROM soft_deleted_workspaces WHERE deleted_at < ?",
                       (time.time() - SOFT_DELETE_RETENTION,))
            row = db.execute("SELECT resource FROM soft_deleted_workspaces WHERE id = ?",
                             (resource_id,)).fetchone()
            if row is not None:
                if on_soft_deleted not in ("purge", "recover"):
                    raise BackendError("SoftDeletedWorkspaceExists", f"{SOFT_DELETED_MESSAGE} ('{name}' was "
                                       "soft-deleted in the last 14 days.)")
                db.execute("DELETE FROM soft_deleted_workspaces WHERE id = ?", (resource_id,))
                if on_soft_deleted == "recover":
                    recovered = ArmResource(**json.loads(row[0]))
                    if recovered.kind != kind:
                        raise BackendError("Conflict", f"The soft-deleted workspace '{name}' is a "
                                           f"{recovered.kind}, not a {kind}; it cannot be recovered as one.")
                    if recovered.parent_id and self._get_locked(db, recovered.parent_id) is None:
                        raise BackendError("HubNotFound", f"Hub '{recovered.parent_id}' of the soft-deleted "
                                           f"project '{name}' does not exist; recover or create it first.")
                    recovered.etag, recovered.modified_at = _etag(), now_iso()
                    self._insert(db, recovered)
                    return recovered
            properties: dict[str, Any] = {"friendlyName": friendly_name or name,
                                          "description": description,
                                          "workspaceId": str(uuid.uuid4())}
            if kind == "Hub":
                region = catalog.normalize_region(location or "")
                if region is None:
                    raise BackendError("LocationNotAvailableForResourceType",
                                       f"The provided location '{location}' is not available for "
                                       f"resource type '{arm.WORKSPACES}'.")
                location = region
            elif kind == "Project":
                hub = self._get_locked(db, hub_id or "")
                if hub is None or hub.kind != "Hub":
                    raise BackendError("HubNotFound", f"Hub '{hub_id}' was not found; a project needs an "
                                       "existing hub.")
                location = hub.location  # a project lives in its hub's region
                properties["hubResourceId"] = hub.id
            else:
                raise BackendError("BadRequest", f"unsupported workspace kind {kind!r}")
            properties["discoveryUrl"] = f"https://{location}.api.azureml.ms/discovery"
            stamp = now_iso()
            resource = ArmResource(resource_id, arm.WORKSPACES, name, kind, location,
                                   properties.get("hubResourceId"), properties, dict(tags or {}),
                                   _etag(), "Succeeded", stamp, stamp, current_user())
            self._insert(db, resource)
        return resource

    def update_workspace(self, workspace_id: str, *, friendly_name: Any = _UNSET,
                         description: Any = _UNSET, tags: Any = _UNSET, location: Any = _UNSET,
                         hub_id: Any = _UNSET) -> ArmResource:
        with self._request(), self._write() as db:
            resource = self._get_locked(db, workspace_id)
            if resource is None or resource.type != arm.WORKSPACES:
                raise BackendError("ResourceNotFound", f"Workspace '{workspace_id}' was not found.")
            if location is not _UNSET and catalog.normalize_region(location) != resource.location:
                raise BackendError(
                    "InvalidResourceLocation",
                    f"The resource '{resource.name}' already exists in location '{resource.location}' "
                    f"in resource group; a resource with the same name cannot be created in location "
                    f"'{location}'.")
            if hub_id is not _UNSET and (hub_id or "").lower() != (resource.parent_id or "").lower():
                raise BackendError("BadRequest", f"The hub of project '{resource.name}' cannot be "
                                   "changed; create a new project instead.")
            if friendly_name is not _UNSET:
                resource.properties["friendlyName"] = friendly_name or resource.name
            if description is not _UNSET:
                resource.properties["description"] = description
            if tags is not _UNSET:
                resource.tags = dict(tags)
            self._save(db, resource)
        return resource

    def delete_workspace(self, workspace_id: str, *, purge: bool = True) -> bool:
        """Delete a hub or project; False when it did not exist (deletes are idempotent).
        Without `purge` it is soft-deleted, as on Azure: its name stays taken for 14 days
        (its contents go; a recovery brings back the workspace itself)."""
        with self._request(), self._write() as db:
            resource = self._get_locked(db, workspace_id)
            if resource is None:
                return False
            if resource.kind == "Hub":
                projects = [r[0] for r in db.execute(
                    "SELECT name FROM resources WHERE type = ? AND parent_id = ?",
                    (arm.WORKSPACES, resource.id))]
                if projects:
                    raise BackendError(
                        "Conflict", f"Hub '{resource.name}' cannot be deleted while it has projects "
                        f"({', '.join(projects)}); delete the projects first.")
            self._delete_with_assignments(db, resource.id)
            if not purge:
                db.execute("INSERT OR REPLACE INTO soft_deleted_workspaces (id, resource, deleted_at) "
                           "VALUES (?, ?, ?)", (resource.id, json.dumps(asdict(resource)), time.time()))
        if resource.kind == "Project":
            shutil.rmtree(self._datastore(resource), ignore_errors=True)
        return True

    # -- Foundry accounts (Cognitive Services, kind AIServices) and their projects --------

    def _live_deleted_account(self, db: sqlite3.Connection, deleted_id: str) -> ArmResource | None:
        """The soft-deleted account at `deleted_id`, purging it first when its 48 hours are up."""
        deleted = self._get_locked(db, deleted_id)
        if deleted is not None and time.time() >= deleted.properties["purgeAfter"]:
            db.execute("DELETE FROM resources WHERE id = ?", (deleted.id,))
            return None
        return deleted

    def _subdomain_owner(self, db: sqlite3.Connection, subdomain: str) -> ArmResource | None:
        """The account (live or soft-deleted) that holds a custom subdomain: they are global."""
        for type_ in (arm.COGNITIVE_ACCOUNTS, arm.DELETED_ACCOUNTS):
            for row in db.execute(f"SELECT {self._COLUMNS} FROM resources WHERE type = ?", (type_,)):
                resource = self._resource(row)
                if type_ == arm.DELETED_ACCOUNTS and self._live_deleted_account(db, resource.id) is None:
                    continue
                if str(resource.properties.get("customSubDomainName", "")).lower() == subdomain.lower():
                    return resource
        return None

    def create_cognitive_account(self, subscription: str, resource_group: str, name: str, *,
                                 location: str, custom_subdomain_name: str, sku: str = "S0",
                                 public_network_access: str = "Enabled", disable_local_auth: bool = False,
                                 identity: str = "SystemAssigned", tags: dict[str, str] | None = None,
                                 restore: bool = False) -> tuple[ArmResource, bool]:
        """A Foundry resource: kind AIServices with allowProjectManagement, and whether it was
        recovered. A name deleted in the last 48 hours is refused unless `restore` recovers it
        (Azure's FlagMustBeSetForRestore)."""
        if not _COGNITIVE_NAME.match(name):
            raise BackendError("InvalidResourceName", f"Account name '{name}' is invalid: 2-64 letters, "
                               "digits, '_', '.' or '-', starting with a letter or digit.")
        region = catalog.normalize_region(location)
        if region is None:
            raise BackendError("LocationNotAvailableForResourceType",
                               f"The provided location '{location}' is not available for resource type "
                               f"'{arm.COGNITIVE_ACCOUNTS}'.")
        resource_id = arm.cognitive_account_id(subscription, resource_group, name)
        deleted_id = arm.deleted_account_id(subscription, region, resource_group, name)
        with self._request(), self._write() as db:
            existing = self._get_locked(db, resource_id)
            if existing is not None:
                raise BackendError("Conflict", f"An account named '{name}' already exists in resource "
                                   f"group '{resource_group}'.")
            deleted = self._live_deleted_account(db, deleted_id)
            if deleted is not None:
                if not restore:
                    raise BackendError(
                        "FlagMustBeSetForRestore",
                        f"An existing resource with ID '{resource_id}' has been soft-deleted. To restore "
                        "the resource, you must specify 'restore' to be 'true' in the property. If you "
                        "don't want to restore existing resource, please purge it first.",
                        hint="set restore_soft_deleted: true on the FoundryAccount to recover it, purge it "
                             f"(`az cognitiveservices account purge --name {name} --resource-group "
                             f"{resource_group} --location {region}`), or pick another name")
                return self._recover_account(db, deleted, resource_id), True
            owner = self._subdomain_owner(db, custom_subdomain_name)
            if owner is not None:
                raise BackendError(
                    "CustomDomainInUse",
                    f"Custom domain name '{custom_subdomain_name}' is already in use"
                    + (" by a soft-deleted account; purge it or wait 48 hours." if owner.type ==
                       arm.DELETED_ACCOUNTS else "."),
                    hint="custom subdomains are global across Azure: pick another custom_subdomain_name")
            stamp = now_iso()
            subdomain = custom_subdomain_name.lower()
            properties: dict[str, Any] = {
                "customSubDomainName": subdomain, "allowProjectManagement": True,
                "publicNetworkAccess": public_network_access, "disableLocalAuth": disable_local_auth,
                "endpoint": f"https://{subdomain}.cognitiveservices.azure.com/",
                "sku": sku, "identity": _identity(identity)}
            resource = ArmResource(resource_id, arm.COGNITIVE_ACCOUNTS, name, "AIServices", region, None,
                                   properties, dict(tags or {}), _etag(), "Succeeded", stamp, stamp,
                                   current_user())
            self._insert(db, resource)
        return resource, False

    def _recover_account(self, db: sqlite3.Connection, deleted: ArmResource, resource_id: str) -> ArmResource:
        """Bring a soft-deleted account back as it was (its projects and role assignments were
        deleted with it and stay deleted)."""
        kept = deleted.properties["account"]
        db.execute("DELETE FROM resources WHERE id = ?", (deleted.id,))
        stamp = now_iso()
        resource = ArmResource(resource_id, arm.COGNITIVE_ACCOUNTS, deleted.name, "AIServices",
                               deleted.location, None, kept["properties"], kept["tags"], _etag(),
                               "Succeeded", kept["created_at"], stamp, current_user())
        self._insert(db, resource)
        return resource

    def update_cognitive_account(self, account_id: str, **changes: Any) -> ArmResource:
        """PATCH: sku, publicNetworkAccess, disableLocalAuth, identity, tags. The location and
        the custom subdomain cannot change."""
        with self._request(), self._write() as db:
            resource = self._get_locked(db, account_id)
            if resource is None or resource.type != arm.COGNITIVE_ACCOUNTS:
                raise BackendError("ResourceNotFound", f"Account '{account_id}' was not found.")
            subdomain = changes.pop("customSubDomainName", None)
            if subdomain is not None and subdomain.lower() != resource.properties["customSubDomainName"]:
                raise BackendError("BadRequest", f"The custom subdomain of account '{resource.name}' "
                                   "cannot be changed once set; create a new account instead.")
            location = changes.pop("location", None)
            if location is not None and catalog.normalize_region(location) != resource.location:
                raise BackendError("InvalidResourceLocation", f"The resource '{resource.name}' already "
                                   f"exists in location '{resource.location}'.")
            if "tags" in changes:
                resource.tags = dict(changes.pop("tags"))
            if "identity" in changes:
                changes["identity"] = _identity(changes["identity"])
            resource.properties.update(changes)
            self._save(db, resource)
        return resource

    def delete_cognitive_account(self, account_id: str, *, purge: bool = False) -> bool:
        """Delete an account with its projects and the role assignments at it. Azure keeps it
        soft-deleted for 48 hours (name and subdomain stay taken) unless it is purged."""
        with self._request(), self._write() as db:
            resource = self._get_locked(db, account_id)
            if resource is None or resource.type != arm.COGNITIVE_ACCOUNTS:
                return False
            self._delete_with_assignments(db, resource.id)
            if not purge:
                parts = resource.id.strip("/").split("/")
                deleted_id = arm.deleted_account_id(parts[1], resource.location or "", parts[3], resource.name)
                stamp = now_iso()
                kept = {"properties": resource.properties, "tags": resource.tags,
                        "created_at": resource.created_at}
                self._insert(db, ArmResource(
                    deleted_id, arm.DELETED_ACCOUNTS, resource.name, resource.kind, resource.location, None,
                    {"account": kept, "customSubDomainName": resource.properties["customSubDomainName"],
                     "deletionDate": stamp, "purgeAfter": time.time() + SOFT_DELETE_HOURS * 3600},
                    {}, _etag(), "Succeeded", stamp, stamp, current_user()))
        return True

    def deleted_account(self, subscription: str, location: str, resource_group: str,
                        name: str) -> ArmResource | None:
        """The soft-deleted account of that name, while it can still be recovered."""
        with self._write() as db:
            return self._live_deleted_account(
                db, arm.deleted_account_id(subscription, location, resource_group, name))

    def purge_deleted_account(self, subscription: str, location: str, resource_group: str, name: str) -> bool:
        with self._request(), self._write() as db:
            return db.execute("DELETE FROM resources WHERE id = ? AND type = ?", (
                arm.deleted_account_id(subscription, location, resource_group, name),
                arm.DELETED_ACCOUNTS)).rowcount > 0

    def create_account_project(self, account_id: str, name: str, *, display_name: str | None = None,
                               description: str = "", identity: str = "SystemAssigned",
                               tags: dict[str, str] | None = None) -> ArmResource:
        if not _COGNITIVE_NAME.match(name):
            raise BackendError("InvalidResourceName", f"Project name '{name}' is invalid: 2-64 letters, "
                               "digits, '_', '.' or '-', starting with a letter or digit.")
        resource_id = arm.account_project_id(account_id, name)
        with self._request(), self._write() as db:
            account = self._get_locked(db, account_id)
            if account is None or account.type != arm.COGNITIVE_ACCOUNTS:
                raise BackendError("ResourceNotFound", f"Account '{account_id}' was not found; a project "
                                   "needs an existing Foundry account.")
            if not account.properties.get("allowProjectManagement"):
                raise BackendError("BadRequest", f"Account '{account.name}' does not allow project "
                                   "management (allowProjectManagement is false).")
            if account.properties["identity"]["type"] == "None":
                raise BackendError("BadRequest", f"Account '{account.name}' has no managed identity; "
                                   "projects need one (set identity: SystemAssigned on the account).")
            if self._get_locked(db, resource_id) is not None:
                raise BackendError("Conflict", f"A project named '{name}' already exists in account "
                                   f"'{account.name}'.")
            first = db.execute("SELECT 1 FROM resources WHERE type = ? AND parent_id = ? LIMIT 1",
                               (arm.ACCOUNT_PROJECTS, account.id)).fetchone() is None
            subdomain = account.properties["customSubDomainName"]
            properties = {"displayName": display_name or name, "description": description,
                          "isDefault": first, "identity": _identity(identity),
                          "endpoints": {"AI Foundry API":
                                        f"https://{subdomain}.services.ai.azure.com/api/projects/{name}"}}
            stamp = now_iso()
            resource = ArmResource(resource_id, arm.ACCOUNT_PROJECTS, name, None, account.location, account.id,
                                   properties, dict(tags or {}), _etag(), "Succeeded", stamp, stamp,
                                   current_user())
            self._insert(db, resource)
        return resource

    def update_account_project(self, project_id: str, **changes: Any) -> ArmResource:
        """PATCH: displayName, description, identity, tags."""
        with self._request(), self._write() as db:
            resource = self._get_locked(db, project_id)
            if resource is None or resource.type != arm.ACCOUNT_PROJECTS:
                raise BackendError("ResourceNotFound", f"Project '{project_id}' was not found.")
            if "tags" in changes:
                resource.tags = dict(changes.pop("tags"))
            if "identity" in changes:
                changes["identity"] = _identity(changes["identity"])
            if "displayName" in changes:
                changes["displayName"] = changes["displayName"] or resource.name
            resource.properties.update(changes)
            self._save(db, resource)
        return resource

    def delete_account_project(self, project_id: str) -> bool:
        with self._request(), self._write() as db:
            resource = self._get_locked(db, project_id)
            if resource is None or resource.type != arm.ACCOUNT_PROJECTS:
                return False
            self._delete_with_assignments(db, resource.id)
        return True

    # -- content-filter (RAI) policies of Foundry accounts ----------------------------------

    def put_rai_policy(self, account_id: str, name: str, properties: dict[str, Any]) -> ArmResource:
        """PUT semantics: create or replace the policy's properties (the account must exist)."""
        resource_id = f"{account_id}/raiPolicies/{name}"
        with self._request(), self._write() as db:
            account = self._get_locked(db, account_id)
            if account is None or account.type != arm.COGNITIVE_ACCOUNTS:
                raise BackendError("ParentResourceNotFound", f"Can not perform requested operation on nested "
                                   f"resource. Parent resource '{arm.last_segment(account_id)}' not found.")
            existing = self._get_locked(db, resource_id)
            if existing is not None:
                existing.properties = {**properties, "type": "UserManaged"}
                self._save(db, existing)
                return existing
            stamp = now_iso()
            resource = ArmResource(resource_id, arm.RAI_POLICIES, name, None, account.location, account.id,
                                   {**properties, "type": "UserManaged"}, {}, _etag(), "Succeeded", stamp, stamp,
                                   current_user())
            self._insert(db, resource)
        return resource

    def delete_rai_policy(self, policy_id: str) -> bool:
        with self._request(), self._write() as db:
            return db.execute("DELETE FROM resources WHERE id = ? AND type = ?",
                              (policy_id, arm.RAI_POLICIES)).rowcount > 0

    # -- model deployments of Foundry accounts ---------------------------------------------

    def put_account_deployment(self, account_id: str, name: str, properties: dict[str, Any]) -> ArmResource:
        """PUT semantics with Azure's checks: the account, a fine-tuned model of its projects'
        jobs, a content-filter policy of the account, a fine-tuned model's deployment type."""
        resource_id = f"{account_id}/deployments/{name}"
        with self._request(), self._write() as db:
            account = self._get_locked(db, account_id)
            if account is None or account.type != arm.COGNITIVE_ACCOUNTS:
                raise BackendError("ParentResourceNotFound", f"Can not perform requested operation on nested "
                                   f"resource. Parent resource '{arm.last_segment(account_id)}' not found.")
            model = properties["model"]["name"]
            jobs = db.execute("SELECT properties FROM resources WHERE type = ? AND id LIKE ? ESCAPE '\\'",
                              (arm.ACCOUNT_FINETUNING_JOBS, _like_prefix(account_id + "/"))).fetchall()
            if not any(json.loads(row[0]).get("fineTunedModel") == model for row in jobs):
                raise BackendError("DeploymentModelNotSupported", f"The model '{model}' is not a fine-tuned "
                                   f"model of account '{account.name}'.")
            if properties["sku"]["name"] not in ("Standard", "GlobalStandard", "Developer"):
                raise BackendError("InvalidResourceProperties", f"The specified SKU '{properties['sku']['name']}' "
                                   "is not supported for fine-tuned models.")
            policy = properties.get("raiPolicyName")
            if policy and self._get_locked(db, f"{account_id}/raiPolicies/{policy}") is None:
                raise BackendError("InvalidResourceProperties", f"The RAI policy '{policy}' was not found in "
                                   f"account '{account.name}'.")
            existing = self._get_locked(db, resource_id)
            if existing is not None:
                existing.properties = dict(properties)
                self._save(db, existing)
                return existing
            stamp = now_iso()
            resource = ArmResource(resource_id, arm.ACCOUNT_DEPLOYMENTS, name, None, account.location, account.id,
                                   dict(properties), {}, _etag(), "Succeeded", stamp, stamp, current_user())
            self._insert(db, resource)
        return resource

    def delete_account_deployment(self, deployment_id: str) -> bool:
        with self._request(), self._write() as db:
            return db.execute("DELETE FROM resources WHERE id = ? AND type = ?",
                              (deployment_id, arm.ACCOUNT_DEPLOYMENTS)).rowcount > 0

    # -- fine-tuning jobs of Foundry projects ----------------------------------------------

    def account_deployment_directory(self, deployment_id: str) -> Path:
        """Where a Foundry deployment's server keeps its config, keys and log."""
        account = deployment_id.split("/deployments/")[0]
        return self.directory / "endpoints" / "foundry" / arm.last_segment(account) / arm.last_segment(deployment_id)

    def account_job_directory(self, project_id: str, job_name: str) -> Path:
        project = self.get(project_id)
        if project is None or project.type != arm.ACCOUNT_PROJECTS:
            raise BackendError("ResourceNotFound", f"Project '{project_id}' was not found.")
        account = arm.last_segment(project.parent_id or "")
        return self.directory / "jobs" / "foundry" / account / project.name / job_name

    def create_account_job(self, project_id: str, name: str, properties: dict[str, Any]) -> ArmResource:
        """A Foundry project's fine-tuning job (the same one again when it exists: its name is
        derived from what it trains)."""
        resource_id = f"{project_id}/fineTuningJobs/{name}"
        with self._request(), self._write() as db:
            project = self._get_locked(db, project_id)
            if project is None or project.type != arm.ACCOUNT_PROJECTS:
                raise BackendError("ResourceNotFound", f"Project '{project_id}' was not found; a fine-tuning "
                                   "job needs an existing Foundry project.")
            existing = self._get_locked(db, resource_id)
            if existing is not None:
                return existing
            stamp = now_iso()
            resource = ArmResource(resource_id, arm.ACCOUNT_FINETUNING_JOBS, name, None, project.location,
                                   project.id, properties, {}, _etag(), "Succeeded", stamp, stamp, current_user())
            self._insert(db, resource)
        return resource

    def delete_account_job(self, job_id: str) -> bool:
        with self._request(), self._write() as db:
            return db.execute("DELETE FROM resources WHERE id = ? AND type = ?",
                              (job_id, arm.ACCOUNT_FINETUNING_JOBS)).rowcount > 0

    # -- data assets (a project's data store and its versioned assets) ---------------------

    def _datastore(self, workspace: ArmResource) -> Path:
        return self.directory / "datastores" / workspace.properties["workspaceId"]

    def _workspace(self, workspace_id: str) -> ArmResource:
        workspace = self.get(workspace_id)
        if workspace is None or workspace.type != arm.WORKSPACES:
            raise BackendError("ResourceNotFound", f"Workspace '{workspace_id}' was not found.")
        return workspace

    def blob_path(self, workspace_id: str, sha256: str) -> Path:
        return self._datastore(self._workspace(workspace_id)) / "blobs" / sha256[:2] / f"{sha256}.jsonl"

    def blob_uri(self, workspace_id: str, sha256: str) -> str:
        workspace = self._workspace(workspace_id)
        parts = workspace_id.strip("/").split("/")
        return (f"azureml://subscriptions/{parts[1]}/resourcegroups/{parts[3]}/workspaces/"
                f"{workspace.name}/datastores/workspaceblobstore/paths/foundryctl/sha256/{sha256}.jsonl")

    @contextmanager
    def data_lock(self) -> Iterator[None]:
        """Hold while checking for a stored blob and registering a version that uses it, so a
        concurrent delete cannot remove the blob in between (deletes take the same lock)."""
        with self._mutex:
            yield

    def upload(self, workspace_id: str, source: Path, sha256: str) -> tuple[str, Path, bool]:
        """Store a file in the workspace's data store under its content hash.

        Returns (uri, local path, whether any bytes were copied): content that is already
        there is not copied again. The bytes are hashed while copied, so a file that changed
        since it was validated is refused instead of stored under the wrong hash.
        """
        target = self.blob_path(workspace_id, sha256)
        uri = self.blob_uri(workspace_id, sha256)
        if target.is_file():
            return uri, target, False
        private_directory(target.parent)
        digest = hashlib.sha256()
        with self._request(), tempfile.NamedTemporaryFile(dir=target.parent, prefix=".upload-",
                                                          delete=False) as out:
            try:
                with open(source, "rb") as data:
                    while block := data.read(4 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
                out.flush()
                os.fsync(out.fileno())
                if digest.hexdigest() != sha256:
                    raise BackendError("ContentMismatch", f"{source} changed since it was validated "
                                       f"(sha256 {digest.hexdigest()[:12]}..., expected {sha256[:12]}...)",
                                       hint="run `foundryctl plan` again")
                os.chmod(out.name, 0o400)  # stored content is immutable, and its owner's alone
                os.replace(out.name, target)
            except BaseException:
                Path(out.name).unlink(missing_ok=True)
                raise
        return uri, target, True

    def register_data_version(self, workspace_id: str, name: str, version: str, *,
                              properties: dict[str, Any], container: dict[str, Any]) -> ArmResource:
        """Register `name:version` and make it the container's latest.

        Registering the same content again keeps the existing version (versions are immutable:
        other content under an existing version is a Conflict). `container` holds the asset's
        mutable properties (description, what manages it) and is written every time.
        """
        workspace = self._workspace(workspace_id)
        container_id = arm.data_id(workspace.id, name)
        version_id = arm.data_version_id(workspace.id, name, version)
        with self._request(), self._write() as db:
            stamp = now_iso()
            existing = self._get_locked(db, version_id)
            if existing is not None and existing.properties.get("sha256") != properties.get("sha256"):
                raise BackendError("Conflict", f"Data asset {name}:{version} already exists with "
                                   "different content; versions are immutable.")
            found = self._get_locked(db, container_id)
            if found is None:
                found = ArmResource(container_id, arm.DATA, name, None, None, workspace.id,
                                    {"dataType": "uri_file", "latestVersion": version, **container},
                                    {}, _etag(), "Succeeded", stamp, stamp, current_user())
                self._insert(db, found)
            else:
                found.properties.update(latestVersion=version, **container)
                self._save(db, found)
            if existing is not None:
                return existing
            resource = ArmResource(version_id, arm.DATA_VERSIONS, version, None, None, container_id,
                                   {"dataType": "uri_file", **properties},
                                   {}, _etag(), "Succeeded", stamp, stamp, current_user())
            self._insert(db, resource)
        return resource

    def data_versions(self, container_id: str) -> list[ArmResource]:
        return self.list(type=arm.DATA_VERSIONS, parent_id=container_id)

    def delete_data_version(self, version_id: str) -> bool:
        """Delete one version (and its blob, when no other version stores the same bytes);
        refused while a job or model references it."""
        with self.data_lock(), self._request(), self._write() as db:
            resource = self._get_locked(db, version_id)
            if resource is None:
                return False
            users = [r[0] for r in db.execute("SELECT source_id FROM refs WHERE target_id = ?",
                                              (version_id,))]
            if users:
                raise BackendError("Conflict", f"Data asset version '{version_id}' is used by "
                                   f"{', '.join(users)}; delete those first.")
            db.execute("DELETE FROM resources WHERE id = ?", (version_id,))
            container = self._get_locked(db, resource.parent_id or "")
            if container is not None:
                remaining = db.execute("SELECT name FROM resources WHERE parent_id = ? AND type = ? "
                                       "ORDER BY created_at DESC, rowid DESC",
                                       (container.id, arm.DATA_VERSIONS)).fetchall()
                if not remaining:
                    db.execute("DELETE FROM resources WHERE id = ?", (container.id,))
                elif container.properties.get("latestVersion") == resource.name:
                    container.properties["latestVersion"] = remaining[0][0]
                    self._save(db, container)
            sha = resource.properties.get("sha256")
            still_used = sha and db.execute(
                "SELECT 1 FROM resources WHERE type = ? AND id LIKE ? ESCAPE '\\' AND "
                "json_extract(properties, '$.sha256') = ? LIMIT 1",
                (arm.DATA_VERSIONS, _like_prefix((arm.workspace_of(version_id) or "") + "/"), sha)).fetchone()
            blob = resource.properties.get("localPath")
            if sha and blob and not still_used:
                Path(blob).unlink(missing_ok=True)
        return True

    # -- jobs and models -------------------------------------------------------------------

    def job_directory(self, workspace_id: str, job_name: str) -> Path:
        return self.directory / "jobs" / self._workspace(workspace_id).properties["workspaceId"] / job_name

    def create_job(self, workspace_id: str, name: str, properties: dict[str, Any]) -> ArmResource:
        workspace = self._workspace(workspace_id)
        resource_id = arm.job_id(workspace.id, name)
        with self._request(), self._write() as db:
            existing = self._get_locked(db, resource_id)
            if existing is not None:
                return existing  # the same job (its name is derived from what it trains)
            stamp = now_iso()
            resource = ArmResource(resource_id, arm.JOBS, name, None, workspace.location, workspace.id,
                                   {"jobType": "FineTuning", **properties}, {}, _etag(), "Succeeded",
                                   stamp, stamp, current_user())
            self._insert(db, resource)
        return resource

    def update_properties(self, resource_id: str, **changes: Any) -> ArmResource:
        with self._write() as db:
            resource = self._get_locked(db, resource_id)
            if resource is None:
                raise BackendError("ResourceNotFound", f"'{resource_id}' was not found.")
            resource.properties.update(changes)
            self._save(db, resource)
        return resource

    def delete_job(self, job_id: str) -> bool:
        with self._request(), self._write() as db:
            db.execute("DELETE FROM refs WHERE source_id = ?", (job_id,))
            return db.execute("DELETE FROM resources WHERE id = ? AND type = ?",
                              (job_id, arm.JOBS)).rowcount > 0

    def register_model(self, workspace_id: str, name: str, properties: dict[str, Any]) -> ArmResource:
        """A new version of model `name` (versions count up from 1, as in Azure)."""
        workspace = self._workspace(workspace_id)
        container_id = arm.model_id(workspace.id, name)
        with self._request(), self._write() as db:
            stamp = now_iso()
            container = self._get_locked(db, container_id)
            if container is None:
                container = ArmResource(container_id, arm.MODELS, name, None, None, workspace.id,
                                        {"latestVersion": "0"}, {}, _etag(), "Succeeded", stamp, stamp,
                                        current_user())
                self._insert(db, container)
            version = str(int(container.properties.get("latestVersion", "0")) + 1)
            container.properties["latestVersion"] = version
            self._save(db, container)
            resource = ArmResource(f"{container_id}/versions/{version}", arm.MODEL_VERSIONS, version, None,
                                   None, container_id, properties, {}, _etag(), "Succeeded", stamp, stamp,
                                   current_user())
            self._insert(db, resource)
        return resource

    def delete_model_version(self, version_id: str) -> bool:
        """Refused while something (a deployment) uses it, as Azure refuses deleting a
        model with an active deployment."""
        with self._request(), self._write() as db:
            users = [r[0] for r in db.execute("SELECT source_id FROM refs WHERE target_id = ?", (version_id,))]
            if users:
                raise BackendError("Conflict", f"Model '{version_id}' is used by {', '.join(users)}; "
                                   "delete those first.")
            db.execute("DELETE FROM refs WHERE source_id = ?", (version_id,))
            deleted = db.execute("DELETE FROM resources WHERE id = ? AND type = ?",
                                 (version_id, arm.MODEL_VERSIONS)).rowcount > 0
            container_id = version_id.rsplit("/versions/", 1)[0]
            if not db.execute("SELECT 1 FROM resources WHERE parent_id = ? LIMIT 1", (container_id,)).fetchone():
                db.execute("DELETE FROM resources WHERE id = ?", (container_id,))
        return deleted

    # -- serverless endpoints (deployments) -------------------------------------------------

    def evaluation_directory(self, workspace_id: str, name: str) -> Path:
        """Where foundryctl keeps an Evaluation's runs (foundryctl runs it; Azure has no such object)."""
        return self.directory / "evaluations" / self._workspace(workspace_id).properties["workspaceId"] / name

    def endpoint_directory(self, workspace_id: str, name: str) -> Path:
        return self.directory / "endpoints" / self._workspace(workspace_id).properties["workspaceId"] / name

    def put_endpoint(self, workspace_id: str, name: str, properties: dict[str, Any]) -> ArmResource:
        """Create the endpoint, or replace its properties (Azure's PUT)."""
        workspace = self._workspace(workspace_id)
        resource_id = arm.endpoint_id(workspace.id, name)
        with self._request(), self._write() as db:
            stamp = now_iso()
            resource = self._get_locked(db, resource_id)
            if resource is None:
                resource = ArmResource(resource_id, arm.ENDPOINTS, name, None, workspace.location, workspace.id,
                                       properties, {}, _etag(), "Succeeded", stamp, stamp, current_user())
                self._insert(db, resource)
            else:
                resource.properties = properties
                self._save(db, resource)
        return resource

    def delete_endpoint(self, endpoint_id: str) -> bool:
        with self._request(), self._write() as db:
            db.execute("DELETE FROM refs WHERE source_id = ?", (endpoint_id,))
            return db.execute("DELETE FROM resources WHERE id = ? AND type = ?",
                              (endpoint_id, arm.ENDPOINTS)).rowcount > 0

    def add_reference(self, source_id: str, target_id: str) -> None:
        """Record that `source_id` (a job, a model) uses `target_id` (a data version)."""
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO refs (source_id, target_id) VALUES (?, ?)",
                       (source_id, target_id))

    def remove_references(self, source_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM refs WHERE source_id = ?", (source_id,))

    def referenced_by(self, target_id: str) -> list[str]:
        with self._mutex:
            return [r[0] for r in self._db.execute("SELECT source_id FROM refs WHERE target_id = ?",
                                                   (target_id,))]

    # -- role assignments ----------------------------------------------------------------

    def create_role_assignment(self, subscription: str, scope: str, principal_id: str,
                               principal_type: str, role_guid: str, description: str = "") -> ArmResource:
        """Assign a role; assigning the same (scope, principal, role) again returns the existing one."""
        role = catalog.find_role(role_guid)
        if role is None:
            raise BackendError("RoleDefinitionDoesNotExist",
                               f"The specified role definition with ID '{role_guid}' does not exist.")
        name = assignment_name(scope, principal_id, role.id)
        resource_id = arm.role_assignment_id(scope, name)
        with self._request(), self._write() as db:
            if not self._scope_exists(db, subscription, scope):
                raise BackendError("InvalidScope" if "/providers/" not in scope else "ResourceNotFound",
                                   f"The scope '{scope}' does not exist.")
            existing = self._get_locked(db, resource_id)
            if existing is not None:
                if existing.properties.get("description", "") != description:
                    existing.properties["description"] = description
                    self._save(db, existing)
                return existing
            stamp = now_iso()
            properties = {"roleDefinitionId": arm.role_definition_id(subscription, role.id),
                          "principalId": principal_id, "principalType": principal_type,
                          "scope": scope, "description": description, "createdOn": stamp}
            resource = ArmResource(resource_id, arm.ROLE_ASSIGNMENTS, name, None, None, scope,
                                   properties, {}, _etag(), "Succeeded", stamp, stamp, current_user())
            self._insert(db, resource)
        return resource

    def update_role_assignment(self, assignment_id: str, *, description: str) -> ArmResource:
        with self._request(), self._write() as db:
            resource = self._get_locked(db, assignment_id)
            if resource is None:
                raise BackendError("RoleAssignmentNotFound",
                                   f"The role assignment '{assignment_id}' is not found.")
            resource.properties["description"] = description
            self._save(db, resource)
        return resource

    def delete_role_assignment(self, assignment_id: str) -> bool:
        with self._request(), self._write() as db:
            return db.execute("DELETE FROM resources WHERE id = ? AND type = ?",
                              (assignment_id, arm.ROLE_ASSIGNMENTS)).rowcount > 0

    def _scope_exists(self, db: sqlite3.Connection, subscription: str, scope: str) -> bool:
        parts = scope.strip("/").split("/")
        if len(parts) < 2 or parts[0].lower() != "subscriptions" or parts[1].lower() != subscription.lower():
            return False
        if len(parts) == 2:
            return True  # the subscription
        if len(parts) == 4 and parts[2].lower() == "resourcegroups" and parts[3]:
            return True  # resource groups exist implicitly here
        return "/providers/" in scope.lower() and self._get_locked(db, scope) is not None

    # -- authorization -------------------------------------------------------------------

    def role_assignments(self, principal_id: str | None = None) -> list[ArmResource]:
        found = self.list(type=arm.ROLE_ASSIGNMENTS)
        if principal_id is None:
            return found
        return [r for r in found if r.properties.get("principalId", "").lower() == principal_id.lower()]

    def check_access(self, principal_id: str, action: str, scope: str, *, data_action: bool = False) -> str:
        """Azure RBAC: allowed when a role assigned at a covering scope grants `action`.

        A hub's scope also covers its projects, as in Azure AI Foundry. Returns the name of
        the granting role; raises AuthorizationFailed naming what is missing.
        """
        covering_scopes = [scope]
        workspace = self._workspace_containing(scope)
        if workspace is not None and workspace.kind == "Project" and workspace.parent_id:
            covering_scopes.append(workspace.parent_id)
        for assignment in self.role_assignments(principal_id):
            assigned_at = assignment.properties["scope"]
            if not any(arm.covers(assigned_at, s) for s in covering_scopes):
                continue
            role = catalog.find_role(arm.last_segment(assignment.properties["roleDefinitionId"]))
            if role is not None and _role_allows(role, action, data_action):
                return role.name
        granting = [r.name for r in catalog.roles().values() if _role_allows(r, action, data_action)]
        raise AuthorizationFailed(
            f"The client '{principal_id}' does not have authorization to perform "
            f"{'data action' if data_action else 'action'} '{action}' over scope '{scope}'.",
            hint=(f"add a RoleAssignment for principal {principal_id!r} with one of: "
                  f"{', '.join(granting)} at this scope or one that covers it"))

    def _workspace_containing(self, scope: str) -> ArmResource | None:
        match = re.match(r"^(.*/providers/" + re.escape(arm.WORKSPACES) + r"/[^/]+)", scope, re.IGNORECASE)
        return self.get(match.group(1)) if match else None


def _role_allows(role: catalog.RoleDefinition, action: str, data_action: bool) -> bool:
    allowed, denied = ((role.data_actions, role.not_data_actions) if data_action
                       else (role.actions, role.not_actions))
    return any(_matches(p, action) for p in allowed) and not any(_matches(p, action) for p in denied)


def _matches(pattern: str, action: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, action, re.IGNORECASE) is not None


def _identity(kind: str) -> dict[str, Any]:
    """A managed identity as ARM shows it: a principal id once system-assigned."""
    if kind == "None":
        return {"type": "None"}
    return {"type": kind, "principalId": str(uuid.uuid4())}


def _etag() -> str:
    return f'"{uuid.uuid4()}"'


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
