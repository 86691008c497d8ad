"""Microsoft.MachineLearningServices/workspaces/serverlessEndpoints, as ARM answers them.

The same URLs serve azure-ai-ml's ServerlessEndpointOperations (api-version 2024-01-01-preview)
and raw generic-resource requests through azure-mgmt-resource (`get_by_id`,
`begin_create_or_update_by_id`, any api-version). Shapes follow the azure-rest-api-specs
examples (stable/2024-10-01/examples/Workspace/ServerlessEndpoint/*.json):

- PUT answers 201 (new) or 200 (existing) with the resource in `Creating`/`Updating` and an
  `Azure-AsyncOperation` header; the operation status reports `InProgress` once, then the
  outcome (`Succeeded`, or `fake.state["serverless"]["outcome"]`), and the resource takes it.
  Omitted `contentSafety` is Azure's default (`Enabled`), as the spec says.
- DELETE answers 202 with a `Location` (mfeOperationResults) that answers 202 once, then 200;
  204 when the endpoint is already gone.
- POST listKeys / regenerateKeys answer the two keys.
- POST https://NAME.LOCATION.models.ai.azure.com/chat/completions (the endpoint's inference URI,
  Azure AI model inference's chat route) answers a chat completion when the bearer key is one of
  the endpoint's keys (401 otherwise) and the endpoint is provisioned. The fake model answers a
  question it was `teach`-ed with that answer, anything else with a fixed support reply.
- A PUT serving a model of the workspace (a custom model) that another endpoint of the workspace
  already serves is refused (400): Learn's fine-tune-serverless page permits one serverless
  deployment per custom model (the error's wording is the fake's; Azure documents only the rule).

`seed_endpoint` puts an endpoint in the fake directly (a Failed one, another project's...).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from azurefake import ARM, FakeAzure, Reply, arm_error, not_found
from azurefake.families.workspaces import WS_PATH, workspace_id

ENDPOINTS = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints"
EP_PATH = WS_PATH + r"/serverlessEndpoints/(?P<name>[^/]+)"
# Operation ids carry an "se:" prefix so these routes answer only this family's operations.
OPS_PATH = (r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.MachineLearningServices/locations/(?P<loc>[^/]+)"
            r"/(?P<kind>mfeOperationsStatus|mfeOperationResults)/(?P<op>se:[^/]+)")
BUSY = ("Creating", "Updating", "Deleting")


def endpoint_id(fake: FakeAzure, project: str, name: str) -> str:
    return f"{workspace_id(fake, project)}/serverlessEndpoints/{name}"


def model_id(fake: FakeAzure, project: str, name: str, version: int | str) -> str:
    """The azureml:// id of a model version registered in `project` (the workspace's GUID)."""
    workspace = fake.get(workspace_id(fake, project))
    assert workspace is not None, f"seed workspace {project} first"
    return (f"azureml://locations/{workspace['location']}/workspaces/{workspace['properties']['workspaceId']}"
            f"/models/{name}/versions/{version}")


def endpoint_body(fake: FakeAzure, project: str, name: str, *, model: str, location: str | None = None,
                  content_safety: str = "Enabled", provisioning_state: str = "Succeeded",
                  tags: dict[str, str] | None = None) -> dict[str, Any]:
    """A serverless endpoint in the shape of the spec's get.json example."""
    location = location or fake.location
    return {
        "id": endpoint_id(fake, project, name), "name": name, "type": ENDPOINTS,
        "location": location, "tags": dict(tags or {}), "sku": {"name": "Consumption"},
        "properties": {
            "modelSettings": {"modelId": model},
            "authMode": "Key",
            "contentSafety": {"contentSafetyStatus": content_safety},
            "inferenceEndpoint": {"uri": f"https://{name.lower()}.{location}.models.ai.azure.com", "headers": {}},
            "provisioningState": provisioning_state,
            "endpointState": _endpoint_state(provisioning_state),
        },
        "systemData": {"createdAt": "2026-11-25T00:00:00Z", "createdBy": "ml-engineer@contoso.com",
                       "createdByType": "User", "lastModifiedAt": "2026-11-25T00:00:00Z"},
    }


def seed_endpoint(fake: FakeAzure, project: str, name: str, *, model: str, content_safety: str = "Enabled",
                  provisioning_state: str = "Succeeded") -> dict[str, Any]:
    body = endpoint_body(fake, project, name, model=model, content_safety=content_safety,
                         provisioning_state=provisioning_state)
    _keys(fake, body["id"])
    return fake.put(body["id"], body)


def keys_of(fake: FakeAzure, resource_id: str) -> dict[str, str]:
    """The endpoint's current keys (tests check they never leak)."""
    return _keys(fake, resource_id)


def _state(fake: FakeAzure) -> dict[str, Any]:
    return fake.state.setdefault("serverless", {"operations": {}, "keys": {}})


def _keys(fake: FakeAzure, resource_id: str) -> dict[str, str]:
    return _state(fake)["keys"].setdefault(resource_id.lower(), {
        "primaryKey": secrets.token_hex(16), "secondaryKey": secrets.token_hex(16)})


def _endpoint_state(provisioning_state: str) -> str:
    return {"Succeeded": "Online", "Failed": "CreationFailed", "Creating": "Creating",
            "Deleting": "Deleting"}.get(provisioning_state, "Unknown")


def _operation(fake: FakeAzure, resource_id: str, action: str) -> str:
    op = f"se:{uuid.uuid4()}"
    _state(fake)["operations"][op] = {"resource": resource_id, "action": action, "polls": 0,
                                     "outcome": _state(fake).get("outcome", "Succeeded")}
    return op


def _op_url(fake: FakeAzure, location: str, kind: str, op: str, api_version: str | None) -> str:
    return (f"{ARM}/subscriptions/{fake.subscription_id}/providers/Microsoft.MachineLearningServices"
            f"/locations/{location}/{kind}/{op}?api-version={api_version}")


def _put(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        ws = workspace_id(fake, match["ws"])
        if fake.get(ws) is None:
            return arm_error(404, "ParentResourceNotFound",
                             f"Can not perform requested operation on nested resource. Parent resource "
                             f"'{match['ws']}' not found.")
        body = call.body if isinstance(call.body, dict) else {}
        props = body.get("properties") or {}
        model = (props.get("modelSettings") or {}).get("modelId")
        if not body.get("location"):
            return arm_error(400, "LocationRequired", "The location property is required for this definition.")
        if not model:
            return arm_error(400, "UserError", "modelSettings.modelId is required for a serverless endpoint.")
        if props.get("authMode", "Key") != "Key":
            return arm_error(400, "UserError", f"Unsupported authMode '{props.get('authMode')}'.")
        existing = fake.get(call.path)
        if existing is not None and existing["properties"]["provisioningState"] in BUSY:
            return arm_error(409, "Conflict", f"Serverless endpoint {match['name']} is "
                             f"{existing['properties']['provisioningState'].lower()}; try again later.")
        if "/workspaces/" in model:
            taken = [e["name"] for e in fake.children(ws, "serverlessEndpoints")
                     if e["name"].lower() != match["name"].lower()
                     and (e["properties"].get("modelSettings") or {}).get("modelId", "").lower() == model.lower()]
            if taken:
                return arm_error(400, "UserError", f"Only one deployment is permitted for a custom model: "
                                 f"{model} is already deployed by serverless endpoint {taken[0]}.")
        status = "Updating" if existing is not None else "Creating"
        safety = (props.get("contentSafety") or {}).get("contentSafetyStatus", "Enabled")  # spec: omitted = default
        resource = endpoint_body(fake, match["ws"], match["name"], model=model, location=body["location"],
                                 content_safety=safety, provisioning_state=status, tags=body.get("tags"))
        if existing is not None:
            resource["systemData"] = existing["systemData"]
        _keys(fake, resource["id"])
        fake.put(resource["id"], resource)
        op = _operation(fake, resource["id"], "write")
        headers = {"Azure-AsyncOperation": _op_url(fake, body["location"], "mfeOperationsStatus", op,
                                                   call.api_version),
                   "x-ms-async-operation-timeout": "PT1H", "Retry-After": "0"}
        return (200 if existing is not None else 201), headers, resource
    return handler


def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        body = fake.get(call.path)
        return (200, {}, body) if body is not None else not_found(call.path)
    return handler


def _delete(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        existing = fake.get(call.path)
        if existing is None:
            return 204, {}, None
        existing["properties"]["provisioningState"] = "Deleting"
        existing["properties"]["endpointState"] = "Deleting"
        op = _operation(fake, existing["id"], "delete")
        return 202, {"Location": _op_url(fake, existing["location"], "mfeOperationResults", op, call.api_version),
                     "x-ms-async-operation-timeout": "PT1H", "Retry-After": "0"}, None
    return handler


def _list(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        ws = workspace_id(fake, match["ws"])
        if fake.get(ws) is None:
            return not_found(ws)
        return 200, {}, {"value": fake.children(ws, "serverlessEndpoints")}
    return handler


def _list_keys(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        resource_id = call.path.rsplit("/", 1)[0]
        if fake.get(resource_id) is None:
            return not_found(resource_id)
        return 200, {}, dict(_keys(fake, resource_id))
    return handler


def _regenerate_keys(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        resource_id = call.path.rsplit("/", 1)[0]
        if fake.get(resource_id) is None:
            return not_found(resource_id)
        key_type = (call.body or {}).get("keyType") if isinstance(call.body, dict) else None
        if key_type not in ("Primary", "Secondary"):
            return arm_error(400, "UserError", f"Unsupported keyType '{key_type}'.")
        keys = _keys(fake, resource_id)
        keys[f"{key_type.lower()}Key"] = secrets.token_hex(16)
        return 200, {}, dict(keys)
    return handler


def _operation_status(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        operation = _state(fake)["operations"].get(match["op"])
        if operation is None:
            return not_found(call.path)
        operation["polls"] += 1
        done = operation["polls"] > 1  # InProgress once: the client has to poll
        resource = fake.get(operation["resource"])
        if match["kind"].lower() == "mfeoperationresults":  # delete: 202 until gone
            if not done:
                return 202, {"Location": call.url, "Retry-After": "0"}, None
            fake.delete(operation["resource"])
            return 200, {}, None
        status = operation["outcome"] if done else "InProgress"
        if done and resource is not None:
            resource["properties"]["provisioningState"] = status
            resource["properties"]["endpointState"] = _endpoint_state(status)
        body: dict[str, Any] = {"id": call.path, "name": match["op"], "status": status,
                                "startTime": "2026-11-25T00:00:00Z"}
        if done:
            body["endTime"] = "2026-11-25T00:01:00Z"
        if status == "Failed":
            body["error"] = {"code": "ServerlessEndpointProvisioningFailed",
                             "message": "The model could not be provisioned on the serverless endpoint."}
        return 200, {"Retry-After": "0"}, body
    return handler


INFERENCE_HOST = r"^https://(?P<host>[a-z0-9-]+\.[a-z0-9]+)\.models\.ai\.azure\.com"
DEFAULT_ANSWER = "Restart the console and the controller, then pair them again."


def _chat_completions(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        host = call.url.split("//", 1)[1].split(".models.ai.azure.com", 1)[0].lower()
        endpoint = next((r for r in fake.resources.values() if r.get("type") == ENDPOINTS and
                         f"{r['name'].lower()}.{r['location'].lower()}" == host), None)
        if endpoint is None:
            return 404, {}, {"error": {"code": "NotFound", "message": "no such endpoint"}}
        keys = _keys(fake, endpoint["id"])
        bearer = call.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in (keys["primaryKey"], keys["secondaryKey"]):
            return 401, {}, {"error": {"code": "Unauthorized", "message": "Key not authorized"}}
        if endpoint["properties"].get("provisioningState") != "Succeeded":
            return 424, {}, {"error": {"code": "ModelNotReady", "message": "the endpoint is not provisioned"}}
        messages = call.body.get("messages") if isinstance(call.body, dict) else None
        if not isinstance(messages, list) or not messages:
            return 400, {}, {"error": {"code": "BadRequest", "message": "messages is required"}}
        asked = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
        answer = _state(fake).setdefault("answers", {}).get(asked, DEFAULT_ANSWER)
        return 200, {}, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "model": endpoint["name"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(answer.split()),
                      "total_tokens": 10 + len(answer.split())}}
    return handler


def teach(fake: FakeAzure, path: Any) -> None:
    """Let the endpoints' model answer each conversation's last question of a chat JSONL file with
    that conversation's answer (a model that learnt its training data)."""
    import json

    answers = _state(fake).setdefault("answers", {})
    with open(path, encoding="utf-8") as data:
        for line in data:
            messages = json.loads(line)["messages"]
            last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
            answers[messages[last - 1]["content"]] = messages[last]["content"]


def install(fake: FakeAzure) -> None:
    fake.route("POST", r"/(?:v1/)?chat/completions", _chat_completions(fake), host=INFERENCE_HOST)
    fake.route("PUT", EP_PATH, _put(fake))
    fake.route("GET", EP_PATH, _get(fake))
    fake.route("DELETE", EP_PATH, _delete(fake))
    fake.route("GET", WS_PATH + r"/serverlessEndpoints", _list(fake))
    fake.route("POST", EP_PATH + r"/listKeys", _list_keys(fake))
    fake.route("POST", EP_PATH + r"/regenerateKeys", _regenerate_keys(fake))
    fake.route("GET", OPS_PATH, _operation_status(fake))
