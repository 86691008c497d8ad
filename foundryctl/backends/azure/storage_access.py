"""Whether the signed-in identity can write the blobs a Dataset uploads, when the project's
datastore is identity-based (shared-key access disabled on the storage account, a common
policy; the workspace's systemDatastoresAuthMode `identity`).

With an account-key datastore azure-ai-ml uploads with the key it lists; with an
identity-based one it skips listSecrets and signs blob requests with the caller's own Entra
token, and then Storage checks data-plane RBAC: Azure AI Developer grants no blob data
actions, Storage Blob Data Contributor (or Owner) does. The plan reads the role assignments
of the token's `oid` at the storage account (assignments at it or above it count); what
comes through a group is not seen, so a missing role is a note, not an error.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

# Built-in roles with Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write
# (learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage).
BLOB_DATA_WRITERS = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
}
ROLE = "Storage Blob Data Contributor"


@dataclass(frozen=True)
class Datastore:
    identity_based: bool
    account: str


def token_object_id(token: str) -> str | None:
    """The `oid` claim of an Entra access token (read, not verified: it only picks whose
    role assignments to list)."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    oid = claims.get("oid") if isinstance(claims, dict) else None
    return str(oid) if oid else None


# The datastore azure-ai-ml uploads local files to (Data(path=<file>)).
UPLOAD_DATASTORE = "workspaceblobstore"


def default_datastore(ml: Any) -> Datastore:
    from azure.ai.ml.entities import AccountKeyConfiguration, SasTokenConfiguration

    store = ml.datastores.get(UPLOAD_DATASTORE)
    keyed = isinstance(store.credentials, (AccountKeyConfiguration, SasTokenConfiguration))
    return Datastore(identity_based=not keyed, account=str(getattr(store, "account_name", "") or ""))


def writer_roles(assignments: list[Any], principal: str, account_id: str) -> list[str]:
    """The blob-writing roles `principal` holds at the storage account or above it."""
    account_id = account_id.lower().rstrip("/")
    found = []
    for a in assignments:
        scope = (a.scope or "").lower().rstrip("/")
        role = (a.role_definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()
        if ((a.principal_id or "").lower() == principal.lower() and role in BLOB_DATA_WRITERS
                and (account_id == scope or account_id.startswith(scope + "/"))):
            found.append(BLOB_DATA_WRITERS[role])
    return found
