"""Microsoft.MachineLearningServices/workspaces (hubs and projects), as ARM answers them.

`seed_workspace` puts a workspace in the fake directly, for tests of the kinds that live
inside a project; the routes answer MLClient's reads of it.

azure-ai-ml creates a workspace through an ARM template deployment (Microsoft.Resources/
deployments, api-version 2020-06-01): the PUT is answered 201 with an `Azure-AsyncOperation`
status the SDK polls (InProgress once, then Succeeded or Failed), and the workspace (with the
hub's storage account and key vault) appears when the deployment succeeds, built from the
submitted template's parameters. Update (PATCH) and delete (DELETE, `forceToPurge`) are
answered 202 with a `Location` the SDK polls, as the Workspaces_Update / Workspaces_Delete
examples of azure-rest-api-specs allow. A deleted workspace is kept as soft-deleted unless it
was purged (`fake.state["workspaces.soft_deleted"]`, ARM id -> body).

Soft-deleted names follow Learn's "Workspace soft deletion": the name cannot be reused until
the retention period (14 days) passes or the workspace is purged. A template deployment of a
workspace whose name is soft-deleted fails (its operation says Conflict, "Soft-deleted
workspace exists. Please purge or recover it."); GET answers 404 for it (it is no live
resource); DELETE ?forceToPurge=true of the name purges it (Workspaces_Delete's purge flag, the
portal's "permanently delete"). Recovery has no operation in the SDK or the REST spec (the
portal's "Recently deleted" view does it): `recover_in_portal` stands for it.
"""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from types import SimpleNamespace
from typing import Any

from azurefake import ARM, FakeAzure, Reply, arm_error, not_found

WORKSPACES = "Microsoft.MachineLearningServices/workspaces"
WS_PATH = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
DEPLOYMENT_PATH = r"/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/Microsoft\.Resources/deployments/(?P<deployment>[^/]+)"
WS_OPERATION_PATH = r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.MachineLearningServices/locations/(?P<loc>[^/]+)/workspaceOperationsStatus/(?P<op>[^/]+)"
DEPLOYMENT_OPERATIONS_PATH = r"/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/deployments/(?P<deployment>[^/]+)/operations"
DEPLOYMENTS_API = "2020-06-01"  # what azure-ai-ml's vendored ResourceManagementClient sends
WORKSPACES_API = "2024-10-01-preview"  # what azure-ai-ml 1.35's MLClient.workspaces sends
KINDS = {"hub": "Hub", "project": "Project", "default": "Default"}
_PARAMETER = re.compile(r"^\[parameters\('([^']+)'\)\]$")
_sequence = itertools.count(1)


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


SOFT_DELETED_CODE = "Conflict"
SOFT_DELETED_MESSAGE = "Soft-deleted workspace exists. Please purge or recover it. https://aka.ms/wsoftdelete"


def soft_deleted(fake: FakeAzure) -> dict[str, dict[str, Any]]:
    """ARM id (lower case) -> the body of each soft-deleted workspace."""
    return fake.state.setdefault("workspaces.soft_deleted", {})


def soft_delete_workspace(fake: FakeAzure, name: str, *, kind: str = "Hub", hub: str | None = None) -> None:
    """A workspace deleted (not purged) within the retention period, made outside this test."""
    soft_deleted(fake)[workspace_id(fake, name).lower()] = workspace_body(fake, name, kind=kind, hub=hub)


def recover_in_portal(fake: FakeAzure, name: str) -> dict[str, Any]:
    """What the portal's Recover does: the soft-deleted workspace is live again."""
    body = soft_deleted(fake).pop(workspace_id(fake, name).lower())
    return fake.put(body["id"], body)


def fail_next_deployment(fake: FakeAzure, code: str, message: str) -> None:
    """The next template deployment fails: its operation status and the workspace's deployment
    operation report `code`/`message`, and no workspace is created."""
    fake.state["workspaces.fail_next_deployment"] = {"code": code, "message": message}


def instant_sdk_waits(monkeypatch: Any, fake: FakeAzure) -> list[float]:
    """Make the SDKs' waits instant and workspace creation's request order fixed (for tests;
    `monkeypatch` is pytest's). Returns the seconds each wait asked for, as they come.

    - azure-core treats `Retry-After: 0` as absent, so every poller falls back to the interval
      its SDK hard-codes (azure-ai-ml: 5 s for template deployments, 30 s for workspace update
      and delete). The transport's sleep, which pollers and the retry policy call, is recorded
      instead of slept.
    - While the deployment poller runs in a background thread, azure-ai-ml loops on
      `time.sleep(5)` in the calling thread and lists the deployment's operations after each
      sleep (CustomArmTemplateDeploymentPollingMethod, in _workspace_operations_base). That
      module's `time.sleep` waits for the poller's thread instead, and the first status poll of
      each deployment is held until then: the SDK always sees the deployment running once, and
      lists its operations exactly twice.
    """
    from azure.ai.ml.operations import _workspace_operations_base
    from azure.core.pipeline.transport import RequestsTransport

    asked: list[float] = []
    release = threading.Event()

    def wait_for_the_deployment_poller(seconds: float) -> None:
        release.set()
        for thread in threading.enumerate():
            if thread.name.startswith("LROPoller(") and thread is not threading.current_thread():
                thread.join(10)

    monkeypatch.setattr(RequestsTransport, "sleep", lambda self, seconds: asked.append(seconds))
    monkeypatch.setattr(_workspace_operations_base, "time", SimpleNamespace(sleep=wait_for_the_deployment_poller))
    fake.state["workspaces.hold_deployment"] = release
    return asked


# -- workspaces ---------------------------------------------------------------------------

def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        body = fake.get(call.path)
        return (200, {}, body) if body is not None else not_found(call.path)
    return handler


def _operation_url(fake: FakeAzure, location: str, outcome: dict[str, Any]) -> str:
    """A Location URL the SDK polls: 202 once, then `outcome` (status, body)."""
    op = str(uuid.UUID(int=next(_sequence)))
    fake.state.setdefault("workspaces.operations", {})[op] = {"polls": 0, **outcome}
    return (f"{ARM}/subscriptions/{fake.subscription_id}/providers/Microsoft.MachineLearningServices"
            f"/locations/{location}/workspaceOperationsStatus/{op}?api-version={WORKSPACES_API}&type=async")


def _patch(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        body = fake.get(call.path)
        if body is None:
            return not_found(call.path)
        patch = call.body or {}
        if "tags" in patch and patch["tags"] is not None:
            body["tags"] = dict(patch["tags"])
        for key in ("friendlyName", "description"):
            value = (patch.get("properties") or {}).get(key)
            if value is not None:
                body["properties"][key] = value
        url = _operation_url(fake, body["location"], {"status": 200, "body": body})
        return 202, {"Location": url, "Retry-After": "0"}, None
    return handler


def _delete(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        purge = call.query.get("forceToPurge", "false").lower() == "true"
        body = fake.delete(call.path)
        if body is None:
            gone = soft_deleted(fake).pop(call.path.lower(), None) if purge else None
            if gone is None:
                return 204, {}, None
            url = _operation_url(fake, gone["location"], {"status": 200, "body": None})
            return 202, {"Location": url, "Retry-After": "0"}, None
        if not purge:
            soft_deleted(fake)[body["id"].lower()] = body
        url = _operation_url(fake, body["location"], {"status": 200, "body": None})
        return 202, {"Location": url, "Retry-After": "0"}, None
    return handler


def _operation(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        op = fake.state.get("workspaces.operations", {}).get(match["op"])
        if op is None:
            return arm_error(404, "OperationNotFound", f"Operation {match['op']} was not found.")
        op["polls"] += 1
        if op["polls"] == 1:
            return 202, {"Location": call.url, "Retry-After": "0"}, None
        return op["status"], {}, op["body"]
    return handler


# -- ARM template deployments (how azure-ai-ml creates workspaces) -------------------------

def _deployment_id(fake: FakeAzure, name: str) -> str:
    return f"/subscriptions/{fake.subscription_id}/resourceGroups/{fake.resource_group}" \
           f"/providers/Microsoft.Resources/deployments/{name}"


def _value(expression: Any, parameters: dict[str, Any]) -> Any:
    """A template value: `[parameters('x')]` resolved, anything else as written."""
    if isinstance(expression, str) and (found := _PARAMETER.match(expression)):
        return (parameters.get(found.group(1)) or {}).get("value")
    return expression


def _planned_resources(fake: FakeAzure, template: dict[str, Any], parameters: dict[str, Any]
                       ) -> list[tuple[str, dict[str, Any] | None]]:
    """(ARM id, body) of what the deployment creates: the template's workspace, and the storage
    account and key vault a hub gets when the SDK asks for new ones (body None: kept out of
    the fake's resources, only reported in the deployment's operations)."""
    def param(name: str) -> Any:
        return (parameters.get(name) or {}).get("value")

    planned: list[tuple[str, dict[str, Any] | None]] = []
    for resource in template.get("resources", []):
        if resource.get("type") != WORKSPACES:
            continue
        name = _value(resource["name"], parameters)
        kind = KINDS.get(str(_value(resource.get("kind"), parameters)).lower(), "Default")
        props = resource.get("properties", {})
        hub_id = _value(props.get("hubResourceId"), parameters)
        body = workspace_body(fake, name, kind=kind, location=_value(resource["location"], parameters),
                              friendly_name=_value(props.get("friendlyName"), parameters),
                              description=_value(props.get("description"), parameters) or "",
                              tags=_value(resource.get("tags"), parameters))
        if hub_id:
            body["properties"]["hubResourceId"] = hub_id
        if kind == "Hub":
            storage = (f"/subscriptions/{param('storageAccountSubscriptionId')}/resourceGroups/"
                       f"{param('storageAccountResourceGroupName')}/providers/Microsoft.Storage/"
                       f"storageAccounts/{param('storageAccountName')}")
            vault = (f"/subscriptions/{fake.subscription_id}/resourceGroups/"
                     f"{param('keyVaultResourceGroupName')}/providers/Microsoft.KeyVault/vaults/"
                     f"{param('keyVaultName')}")
            body["properties"].update({"storageAccount": storage, "keyVault": vault})
            if param("storageAccountOption") == "new":
                planned.append((storage, None))
            if param("keyVaultOption") == "new":
                planned.append((vault, None))
        planned.append((body["id"], body))
    return planned


def _put_deployment(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        name = match["deployment"]
        properties = (call.body or {}).get("properties") or {}
        if not isinstance(properties.get("template"), dict):
            return arm_error(400, "InvalidRequestContent", "The request content was invalid: 'template' is missing.")
        failure = fake.state.pop("workspaces.fail_next_deployment", None)
        planned = _planned_resources(fake, properties["template"], properties.get("parameters", {}))
        if any(rid.lower() in soft_deleted(fake) for rid, body in planned if body is not None):
            failure = {"code": SOFT_DELETED_CODE, "message": SOFT_DELETED_MESSAGE}
        op = str(uuid.UUID(int=next(_sequence)))
        deployment_id = _deployment_id(fake, name)
        deployment = {
            "id": deployment_id, "name": name, "type": "Microsoft.Resources/deployments",
            "properties": {
                "templateHash": "11481387040730012040", "parameters": properties.get("parameters", {}),
                "mode": properties.get("mode", "Incremental"), "provisioningState": "Accepted",
                "timestamp": "2026-11-25T00:00:00Z", "duration": "PT0.5S",
                "correlationId": str(uuid.uuid4()), "providers": [], "dependencies": []},
        }
        fake.state.setdefault("workspaces.deployments", {})[name.lower()] = {
            "body": deployment, "op": op, "polls": 0, "failure": failure,
            "planned": planned,
        }
        status_url = f"{ARM}{deployment_id}/operationStatuses/{op}?api-version={DEPLOYMENTS_API}"
        return 201, {"Azure-AsyncOperation": status_url, "Retry-After": "0"}, deployment
    return handler


def _deployment(fake: FakeAzure, name: str) -> dict[str, Any] | None:
    return fake.state.get("workspaces.deployments", {}).get(name.lower())


def _get_deployment(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        deployment = _deployment(fake, match["deployment"])
        if deployment is None:
            return arm_error(404, "DeploymentNotFound",
                             f"Deployment '{match['deployment']}' could not be found.")
        return 200, {}, deployment["body"]
    return handler


def _deployment_status(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        deployment = _deployment(fake, match["deployment"])
        if deployment is None or deployment["op"] != match["op"]:
            return arm_error(404, "DeploymentNotFound",
                             f"Deployment '{match['deployment']}' could not be found.")
        deployment["polls"] += 1
        props = deployment["body"]["properties"]
        if deployment["polls"] == 1:
            hold = fake.state.get("workspaces.hold_deployment")
            if hold is not None:  # see instant_sdk_waits
                hold.wait(10)
            props["provisioningState"] = "Running"
            return 200, {"Retry-After": "0"}, {"status": "InProgress"}
        if props["provisioningState"] == "Running":  # finishes now, once
            props["duration"] = "PT1M2.5S"
            if deployment["failure"]:
                props["provisioningState"] = "Failed"
                props["error"] = {"code": "DeploymentFailed", "message": (
                    "At least one resource deployment operation failed. Please list deployment "
                    "operations for details."), "details": [deployment["failure"]]}
            else:
                props["provisioningState"] = "Succeeded"
                props["outputResources"] = [{"id": rid} for rid, _ in deployment["planned"]]
                for resource_id, body in deployment["planned"]:
                    if body is not None:
                        fake.put(resource_id, body)
        if props["provisioningState"] == "Failed":
            return 200, {}, {"status": "Failed", "error": props["error"]}
        return 200, {}, {"status": "Succeeded"}
    return handler


def _deployment_operations(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        deployment = _deployment(fake, match["deployment"])
        if deployment is None:
            return arm_error(404, "DeploymentNotFound",
                             f"Deployment '{match['deployment']}' could not be found.")
        state = deployment["body"]["properties"]["provisioningState"]
        operations = []
        for index, (resource_id, _) in enumerate(deployment["planned"]):
            last = index == len(deployment["planned"]) - 1
            failed = state == "Failed" and last
            properties: dict[str, Any] = {
                "provisioningOperation": "Create",
                "provisioningState": "Failed" if failed else ("Running" if state == "Running" and last
                                                              else "Succeeded"),
                "timestamp": "2026-11-25T00:01:02Z", "duration": "PT1M", "trackingId": str(uuid.uuid4()),
                "serviceRequestId": str(uuid.uuid4()),
                "statusCode": "BadRequest" if failed else "OK",
                "targetResource": {"id": resource_id, "resourceType": "/".join(resource_id.split("/")[6:8]),
                                   "resourceName": resource_id.rsplit("/", 1)[-1]},
            }
            if failed:
                properties["statusMessage"] = {"status": "Failed", "error": deployment["failure"]}
            operations.append({"id": f"{deployment['body']['id']}/operations/{index + 1:016X}",
                               "operationId": f"{index + 1:016X}", "properties": properties})
        return 200, {}, {"value": operations}
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("GET", WS_PATH, _get(fake))
    fake.route("PATCH", WS_PATH, _patch(fake))
    fake.route("DELETE", WS_PATH, _delete(fake))
    fake.route("GET", WS_OPERATION_PATH, _operation(fake))
    fake.route("PUT", DEPLOYMENT_PATH, _put_deployment(fake))
    fake.route("GET", DEPLOYMENT_PATH, _get_deployment(fake))
    fake.route("GET", DEPLOYMENT_PATH + r"/operationStatuses/(?P<op>[^/]+)", _deployment_status(fake))
    fake.route("GET", DEPLOYMENT_OPERATIONS_PATH, _deployment_operations(fake))
