"""Data assets, datastores and the workspace's blob storage, as Azure answers azure-ai-ml.

`MLClient.data.create_or_update(Data(path=<local file>))` reads the default datastore
(`workspaceblobstore`), asks for its account key (`listSecrets`), checks whether the
content-addressed blob `LocalUpload/<hash>/<file>` is already there (HEAD, with the upload
confirmation in its metadata), uploads it (PUT blob, PUT ?comp=metadata) and registers the
version (PUT .../data/NAME/versions/VERSION, which also creates the container). Shapes
follow the azure-rest-api-specs examples (Workspace/DataVersionBase, Datastore) and the Blob
service REST API. Blobs are kept in `fake.state["blobs"]`: (account, container, name) ->
{"data": bytes, "metadata": {...}}.

`identity_only_storage` models a storage account with shared-key access disabled (a common
policy; the workspace's `systemDatastoresAuthMode: identity`): the datastore has no
credentials (`credentialsType: None`, so azure-ai-ml skips listSecrets and signs blob requests
with the caller's Entra token), a SharedKey request is 403 KeyBasedAuthenticationNotPermitted,
and a token whose `oid` holds no Storage Blob Data Contributor/Owner at the account or above
is 403 AuthorizationPermissionMismatch, as Azure Storage answers.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import json
from typing import cast

from azurefake import FakeAzure, Reply, arm_error, not_found
from azurefake.families.authorization import holds_role
from azurefake.families.workspaces import WS_PATH

DATASTORE = "workspaceblobstore"
CONTAINER = "azureml-blobstore-6a3d4c2e-1f0b-4d5e-9a8b-7c6d5e4f3a2b"
ACCOUNT_KEY = base64.b64encode(b"fake-storage-account-key-0123456789").decode()
SYSTEM_DATA = {"createdAt": "2026-11-25T00:00:00Z", "createdBy": "ml-engineer@contoso.com",
               "createdByType": "User", "lastModifiedAt": "2026-11-25T00:00:00Z",
               "lastModifiedBy": "ml-engineer@contoso.com", "lastModifiedByType": "User"}


def storage_account(workspace: str) -> str:
    """The storage account of a project's hub, as workspaces.py names it."""
    return "st" + workspace.replace("-", "")[:18]


def blob_host(workspace: str) -> str:
    return f"https://{storage_account(workspace)}.blob.core.windows.net"


BLOB_DATA_WRITERS = {"ba92f5b4-2d11-453d-a403-e96b0029c9fe", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"}


def identity_only_storage(fake: FakeAzure) -> None:
    fake.state["data.identity_only"] = True


def storage_account_id(fake: FakeAzure, account: str) -> str:
    return f"{fake.rg_id}/providers/Microsoft.Storage/storageAccounts/{account}"


def _token_oid(authorization: str) -> str | None:
    """The `oid` claim of a Bearer token (unverified: the fake trusts what it was given)."""
    parts = authorization.removeprefix("Bearer ").split(".")
    if len(parts) < 2:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return cast(str, claims.get("oid")) if isinstance(claims, dict) else None


def _refused(fake: FakeAzure, call: Any) -> Reply | None:
    """Identity-only storage's answer to a request it refuses; None when it may go on (a
    HEAD is answered without its body, as HTTP wants)."""
    refusal = _refusal(fake, call)
    if refusal is not None and call.method == "HEAD":
        return refusal[0], refusal[1], None
    return refusal


def _refusal(fake: FakeAzure, call: Any) -> Reply | None:
    if not fake.state.get("data.identity_only"):
        return None
    authorization = call.headers.get("Authorization", "")
    error = {"x-ms-version": "2025-05-05"}
    if not authorization.startswith("Bearer "):  # SharedKey, or a SAS made from the key
        return 403, {**error, "x-ms-error-code": "KeyBasedAuthenticationNotPermitted"}, (
            b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>KeyBasedAuthenticationNotPermitted</Code>"
            b"<Message>Key based authentication is not permitted on this storage account.</Message></Error>")
    account = call.url.split("//", 1)[1].split(".", 1)[0]
    oid = _token_oid(authorization)
    if oid is None or not holds_role(fake, oid, storage_account_id(fake, account), BLOB_DATA_WRITERS):
        return 403, {**error, "x-ms-error-code": "AuthorizationPermissionMismatch"}, (
            b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch</Code>"
            b"<Message>This request is not authorized to perform this operation using this permission.</Message>"
            b"</Error>")
    return None


def blobs(fake: FakeAzure) -> dict[tuple[str, str, str], dict[str, Any]]:
    return fake.state.setdefault("blobs", {})


def data_id(fake: FakeAzure, workspace: str, name: str) -> str:
    from azurefake.families.workspaces import workspace_id

    return f"{workspace_id(fake, workspace)}/data/{name}"


def seed_data_version(fake: FakeAzure, workspace: str, name: str, version: str, *,
                      data_uri: str = "azureml://datastores/workspaceblobstore/paths/LocalUpload/x/train.jsonl",
                      tags: dict[str, str] | None = None, description: str = "",
                      is_archived: bool = False) -> dict[str, Any]:
    """Register a data version directly (for tests of what reads it)."""
    body = {"properties": {"dataType": "uri_file", "dataUri": data_uri, "description": description,
                           "tags": dict(tags or {}), "properties": {}, "isAnonymous": False,
                           "isArchived": is_archived}}
    return _store_version(fake, data_id(fake, workspace, name), version, body)


def _store_version(fake: FakeAzure, container_id: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
    name = container_id.rsplit("/", 1)[1]
    props = body.get("properties", {})
    resource = {
        "id": f"{container_id}/versions/{version}", "name": version,
        "type": "Microsoft.MachineLearningServices/workspaces/data/versions",
        "properties": {"dataType": props.get("dataType", "uri_file"), "dataUri": props.get("dataUri"),
                       "description": props.get("description"), "tags": dict(props.get("tags") or {}),
                       "properties": dict(props.get("properties") or {}),
                       "isAnonymous": bool(props.get("isAnonymous", False)),
                       "isArchived": bool(props.get("isArchived", False))},
        "systemData": SYSTEM_DATA,
    }
    fake.put(resource["id"], resource)
    container = fake.get(container_id) or {
        "id": container_id, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/data",
        "properties": {"dataType": resource["properties"]["dataType"], "description": None, "tags": {},
                       "properties": {}, "isArchived": False},
        "systemData": SYSTEM_DATA,
    }
    # Azure's latest version is the most recently created one.
    versions = fake.state.setdefault("data_version_order", {}).setdefault(container_id.lower(), [])
    if version not in versions:
        versions.append(version)
    container["properties"]["latestVersion"] = versions[-1]
    container["properties"]["nextVersion"] = str(len(versions) + 1)
    fake.put(container_id, container)
    return resource


# -- data containers and versions ---------------------------------------------------------

def _get(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        if fake.get(_workspace_of(call.path)) is None:  # a deleted project takes its assets along
            return not_found(_workspace_of(call.path))
        resource = fake.get(call.path)
        return (200, {}, resource) if resource is not None else not_found(call.path)
    return handler


def _put_version(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        if fake.get(_workspace_of(call.path)) is None:
            return not_found(_workspace_of(call.path))
        container_id = call.path.rsplit("/versions/", 1)[0]
        version = match.group("version")
        existing = fake.get(call.path)
        new_uri = (call.body or {}).get("properties", {}).get("dataUri")
        if existing is not None and existing["properties"]["dataUri"] != new_uri:
            # Azure's assets are immutable but for description, tags and the archive flag.
            return arm_error(409, "UserError", "A data version with this name and version already exists. "
                             "If you are trying to create a new data version, use a different name or version. "
                             "If you are trying to update an existing data version, the existing asset's data "
                             "uri cannot be changed.")
        resource = _store_version(fake, container_id, version, call.body or {})
        return (200 if existing is not None else 201), {}, resource
    return handler


def _list_versions(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        if fake.get(_workspace_of(call.path)) is None:
            return not_found(_workspace_of(call.path))
        container_id = call.path.rsplit("/versions", 1)[0]
        return 200, {}, {"value": fake.children(container_id, "versions")}
    return handler


def _workspace_of(path: str) -> str:
    lowered = path.lower()
    marker = "/providers/microsoft.machinelearningservices/workspaces/"
    start = lowered.index(marker) + len(marker)
    end = path.find("/", start)
    return path if end < 0 else path[:end]


# -- datastores ----------------------------------------------------------------------------

def _datastore(fake: FakeAzure, workspace_path: str, workspace: str, name: str) -> dict[str, Any]:
    return {
        "id": f"{workspace_path}/datastores/{name}", "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/datastores",
        "properties": {"description": None, "tags": {}, "isDefault": True, "properties": None,
                       "credentials": ({"credentialsType": "None"} if fake.state.get("data.identity_only") else
                                       {"credentialsType": "AccountKey", "secrets": {"secretsType": "AccountKey"}}),
                       "datastoreType": "AzureBlob", "accountName": storage_account(workspace),
                       "containerName": CONTAINER, "endpoint": "core.windows.net", "protocol": "https",
                       "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity"},
        "systemData": SYSTEM_DATA,
    }


def _get_datastore(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        workspace_path = _workspace_of(call.path)
        if fake.get(workspace_path) is None or match.group("store") != DATASTORE:
            return not_found(call.path)
        return 200, {}, _datastore(fake, workspace_path, match.group("ws"), DATASTORE)
    return handler


def _list_secrets(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        if fake.get(_workspace_of(call.path)) is None or match.group("store") != DATASTORE:
            return not_found(call.path)
        if fake.state.get("data.identity_only"):
            return arm_error(400, "UserError", "No secrets for credentials of type None.")
        return 200, {}, {"secretsType": "AccountKey", "key": ACCOUNT_KEY}
    return handler


# -- blob storage --------------------------------------------------------------------------

def _blob_key(call: Any, match: Any) -> tuple[str, str, str]:
    account = call.url.split("//", 1)[1].split(".", 1)[0]
    from urllib.parse import unquote

    return account, match.group("container"), unquote(match.group("blob"))


def _blob_headers(blob: dict[str, Any]) -> dict[str, str]:
    data = blob["data"]
    headers = {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream",
               "ETag": '"0x8DC' + hashlib.md5(data).hexdigest()[:12].upper() + '"',
               "Last-Modified": "Wed, 25 Nov 2026 00:00:00 GMT", "x-ms-blob-type": "BlockBlob",
               "x-ms-version": "2025-05-05", "x-ms-request-id": "fake", "Accept-Ranges": "bytes"}
    headers.update({f"x-ms-meta-{k}": v for k, v in blob["metadata"].items()})
    return headers


def _blob_not_found() -> Reply:
    return 404, {"x-ms-error-code": "BlobNotFound", "x-ms-version": "2025-05-05"}, None


def _head_blob(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        if (refusal := _refused(fake, call)) is not None:
            return refusal
        blob = blobs(fake).get(_blob_key(call, match))
        return (200, _blob_headers(blob), None) if blob is not None else _blob_not_found()
    return handler


def _get_blob(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        if (refusal := _refused(fake, call)) is not None:
            return refusal
        blob = blobs(fake).get(_blob_key(call, match))
        return (200, _blob_headers(blob), blob["data"]) if blob is not None else _blob_not_found()
    return handler


def _put_blob(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        if (refusal := _refused(fake, call)) is not None:
            return refusal
        key = _blob_key(call, match)
        if call.query.get("comp") == "metadata":
            blob = blobs(fake).get(key)
            if blob is None:
                return _blob_not_found()
            blob["metadata"] = {k[len("x-ms-meta-"):]: v for k, v in call.headers.items()
                                if k.lower().startswith("x-ms-meta-")}
            return 200, {"ETag": _blob_headers(blob)["ETag"], "x-ms-version": "2025-05-05"}, None
        if call.query.get("comp"):
            return 400, {"x-ms-error-code": "UnsupportedQueryParameter"}, None
        data = call.raw if isinstance(call.raw, bytes) else b""
        blobs(fake)[key] = {"data": data, "metadata": {k[len("x-ms-meta-"):]: v for k, v in call.headers.items()
                                                       if k.lower().startswith("x-ms-meta-")}}
        digest = base64.b64encode(hashlib.md5(data).digest()).decode()
        return 201, {"ETag": _blob_headers(blobs(fake)[key])["ETag"], "Content-MD5": digest,
                     "x-ms-request-server-encrypted": "true", "x-ms-version": "2025-05-05"}, None
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("GET", WS_PATH + r"/data/(?P<name>[^/]+)", _get(fake))
    fake.route("GET", WS_PATH + r"/data/(?P<name>[^/]+)/versions", _list_versions(fake))
    fake.route("GET", WS_PATH + r"/data/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", _get(fake))
    fake.route("PUT", WS_PATH + r"/data/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", _put_version(fake))
    fake.route("GET", WS_PATH + r"/datastores/(?P<store>[^/]+)", _get_datastore(fake))
    fake.route("POST", WS_PATH + r"/datastores/(?P<store>[^/]+)/listSecrets", _list_secrets(fake))
    host = r"^https://[a-z0-9]+\.blob\.core\.windows\.net"
    blob_path = r"/(?P<container>[^/]+)/(?P<blob>.+)"
    fake.route("HEAD", blob_path, _head_blob(fake), host=host)
    fake.route("GET", blob_path, _get_blob(fake), host=host)
    fake.route("PUT", blob_path, _put_blob(fake), host=host)
