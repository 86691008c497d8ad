"""Microsoft.MachineLearningServices/workspaces (hubs and projects), as ARM answers them.

`seed_workspace` puts a workspace in the fake directly, for tests of the kinds that live
inside a project; the routes answer MLClient's reads of it.
"""

from __future__ import annotations

import uuid
from typing import Any

from azurefake import FakeAzure, Reply, not_found

WORKSPACES = "Microsoft.MachineLearningServices/workspaces"
WS_PATH = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"


def workspace_id(fake: FakeAzure, name: str) -> str:
    return f"{fake.rg_id}/providers/{WORKSPACES}/{name}"


def workspace_body(fake: FakeAzure, name: str, *, kind: str, location: str | None = None,
                   hub: str | None = None, friendly_name: str | None = None, description: str = "",
                   tags: dict[str, str] | None = None) -> dict[str, Any]:
    """A workspace in the shape of the azure-rest-api-specs Workspace examples."""
    location = location or fake.location
    ws_id = workspace_id(fake, name)
    storage = f"{fake.rg_id}/providers/Microsoft.Storage/storageAccounts/st{name.replace('-', '')[:18]}"
    properties: dict[str, Any] = {
        "friendlyName": friendly_name or name,
        "description": description,
        "workspaceId": str(uuid.uuid5(uuid.NAMESPACE_URL, ws_id.lower())),
        "provisioningState": "Succeeded",
        "discoveryUrl": f"https://{location}.api.azureml.ms/discovery",
        "mlFlowTrackingUri": f"azureml://{location}.api.azureml.ms/mlflow/v1.0{ws_id}",
        "publicNetworkAccess": "Enabled",
        "hbiWorkspace": False,
        "v1LegacyMode": False,
    }
    if kind == "Hub":
        properties.update({
            "storageAccount": storage,
            "keyVault": f"{fake.rg_id}/providers/Microsoft.KeyVault/vaults/kv{name.replace('-', '')[:18]}",
        })
    if hub is not None:
        properties["hubResourceId"] = workspace_id(fake, hub)
    return {
        "id": ws_id, "name": name, "type": WORKSPACES, "kind": kind, "location": location,
        "tags": dict(tags or {}),
        "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid4()),
                     "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47"},
        "sku": {"name": "Basic", "tier": "Basic"},
        "properties": properties,
        "systemData": {"createdAt": "2026-11-25T00:00:00Z", "createdBy": "ml-engineer@contoso.com",
                       "createdByType": "User", "lastModifiedAt": "2026-11-25T00:00:00Z"},
    }


def seed_workspace(fake: FakeAzure, name: str, *, kind: str = "Project", hub: str | None = None,
                   location: str | None = None) -> dict[str, Any]:
    """Put a workspace in the fake (and its hub, for a project) without going through create."""
    if kind == "Project":
        hub = hub or "ft-hub"
        if fake.get(workspace_id(fake, hub)) is None:
            seed_workspace(fake, hub, kind="Hub", location=location)
    return fake.put(workspace_id(fake, name), workspace_body(fake, name, kind=kind, hub=hub, location=location))


def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        body = fake.get(call.path)
        return (200, {}, body) if body is not None else not_found(call.path)
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("GET", WS_PATH, _get(fake))
