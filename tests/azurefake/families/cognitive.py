"""Microsoft.CognitiveServices accounts (Foundry resources) and accounts/projects at
api-version 2025-06-01, with Azure's soft delete of accounts.

Shapes follow azure-rest-api-specs Microsoft.CognitiveServices/stable/2025-06-01/examples
(CreateAccountMin.json, UpdateAccount.json, DeleteAccount.json, PurgeDeletedAccount.json,
CreateProject.json, GetProject.json, DeleteProject.json): PUT, PATCH and DELETE answer 202 (201
for a new PUT) with an Azure-AsyncOperation URL that says InProgress once, then Succeeded.

Rules kept (Learn: "Recover or purge deleted Azure AI services resources"; Terraform's
azurerm_cognitive_account_project notes):
- a deleted account stays at .../locations/L/resourceGroups/G/deletedAccounts/NAME for 48
  hours; a PUT of that name without `properties.restore: true` is 409
  FlagMustBeSetForRestore, with it the account comes back as it was;
- custom subdomains are global: one held by another account, live or soft-deleted, is 400
  CustomDomainInUse; it cannot change once set (400);
- a project needs an AIServices account with allowProjectManagement, a managed identity and
  a custom subdomain, in the account's location; deleting an account deletes its projects.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from azurefake import ARM, FakeAzure, Reply, arm_error, not_found

API = "2025-06-01"
NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}"
ACCOUNT_PATH = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                rf"Microsoft\.CognitiveServices/accounts/(?P<name>{NAME})")
PROJECT_PATH = ACCOUNT_PATH + rf"/projects/(?P<project>{NAME})"
DELETED_PATH = (r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.CognitiveServices/locations/"
                r"(?P<loc>[^/]+)/resourceGroups/(?P<rg>[^/]+)/deletedAccounts/(?P<name>[^/]+)")
OPERATION_PATH = (r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.CognitiveServices/locations/"
                  r"(?P<loc>[^/]+)/operationResults/(?P<op>[^/]+)")
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
_sequence = itertools.count(1)


def account_id(fake: FakeAzure, name: str) -> str:
    return f"{fake.rg_id}/providers/Microsoft.CognitiveServices/accounts/{name}"


def deleted_id(fake: FakeAzure, location: str, name: str) -> str:
    return (f"/subscriptions/{fake.subscription_id}/providers/Microsoft.CognitiveServices/locations/"
            f"{location}/resourceGroups/{fake.resource_group}/deletedAccounts/{name}")


def _deleted(fake: FakeAzure) -> dict[str, dict[str, Any]]:
    """Soft-deleted accounts by lower-cased deletedAccounts id."""
    return fake.state.setdefault("cognitive.deleted", {})


def _identity(requested: Any) -> dict[str, Any]:
    kind = (requested or {}).get("type") or "None"
    if kind == "None":
        return {"type": "None"}
    return {"type": kind, "principalId": str(uuid.uuid4()), "tenantId": TENANT}


def _etag() -> str:
    return f'W/"datetime\'{uuid.uuid4()}\'"'


def _accepted(fake: FakeAzure, status: int, body: Any, location: str) -> Reply:
    op = str(uuid.UUID(int=next(_sequence)))
    fake.state.setdefault("cognitive.operations", {})[op] = 0
    url = (f"{ARM}/subscriptions/{fake.subscription_id}/providers/Microsoft.CognitiveServices/locations/"
           f"{location}/operationResults/{op}?api-version={API}")
    return status, {"Azure-AsyncOperation": url, "Retry-After": "0"}, body


def _wrong_version(call: Any) -> Reply | None:
    if call.api_version != API:
        return arm_error(400, "InvalidApiVersionParameter",
                         f"The api-version '{call.api_version}' is invalid; this fake answers {API}.")
    return None


def _subdomain_holder(fake: FakeAzure, subdomain: str, except_id: str) -> str | None:
    """'live' or 'deleted' when another account holds the subdomain (it is global)."""
    for key, body in fake.resources.items():
        if body.get("type") == "Microsoft.CognitiveServices/accounts" and key != except_id.lower() and \
                str(body["properties"].get("customSubDomainName", "")).lower() == subdomain:
            return "live"
    for body in _deleted(fake).values():
        if str(body["account"]["properties"].get("customSubDomainName", "")).lower() == subdomain:
            return "deleted"
    return None


def endpoint(fake: FakeAzure, subdomain: str) -> str:
    """The account's endpoint: Azure's name for it, or, while the openai_finetuning family's
    loopback server runs, that server's URL for this account (so the openai client reaches it)."""
    server = fake.state.get("openai.finetuning")
    return f"{server.url}/{subdomain}/" if server is not None else f"https://{subdomain}.cognitiveservices.azure.com/"


def seed_account(fake: FakeAzure, name: str, *, kind: str = "AIServices", subdomain: str | None = None,
                 **properties: Any) -> dict[str, Any]:
    """An account that exists before the test (made in the portal)."""
    resource_id = account_id(fake, name)
    subdomain = (subdomain or name).lower()
    body = {"id": resource_id, "name": name, "type": "Microsoft.CognitiveServices/accounts",
            "location": fake.location, "kind": kind, "sku": {"name": "S0"}, "etag": _etag(), "tags": {},
            "identity": _identity({"type": "SystemAssigned"}),
            "properties": {"customSubDomainName": subdomain, "allowProjectManagement": True,
                           "publicNetworkAccess": "Enabled", "disableLocalAuth": False,
                           "endpoint": endpoint(fake, subdomain),
                           "provisioningState": "Succeeded", **properties}}
    return fake.put(resource_id, body)


def seed_deleted_account(fake: FakeAzure, name: str, subdomain: str | None = None) -> None:
    """An account of this name deleted within the last 48 hours."""
    body = seed_account(fake, name, subdomain=subdomain)
    fake.delete(body["id"])
    _deleted(fake)[deleted_id(fake, body["location"], name).lower()] = {"account": body}


def _put_account(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_version(call)) is not None:
            return error
        resource_id = account_id(fake, match["name"])
        request = call.body or {}
        props = dict(request.get("properties") or {})
        location = str(request.get("location") or "").replace(" ", "").lower()
        if not location:
            return arm_error(400, "LocationRequired", "The location property is required for this definition.")
        gone = _deleted(fake).pop(deleted_id(fake, location, match["name"]).lower(), None)
        if gone is not None and not props.get("restore"):
            _deleted(fake)[deleted_id(fake, location, match["name"]).lower()] = gone
            return arm_error(409, "FlagMustBeSetForRestore", (
                f"An existing resource with ID '{resource_id}' has been soft-deleted. To restore the "
                "resource, you must specify 'restore' to be 'true' in the property. If you don't want "
                "to restore existing resource, please purge it first."))
        if gone is not None:
            body = fake.put(resource_id, {**gone["account"], "etag": _etag()})
            return _accepted(fake, 200, body, location)
        existing = fake.get(resource_id)
        subdomain = str(props.get("customSubDomainName") or "").lower()
        if props.get("allowProjectManagement") and not subdomain:
            return arm_error(400, "CustomSubDomainNameRequired",
                             "allowProjectManagement requires a customSubDomainName.")
        if existing is not None and existing["properties"].get("customSubDomainName") not in (None, subdomain):
            return arm_error(400, "CustomSubDomainNameCannotBeChanged",
                             "The custom subdomain name of an account cannot be changed once set.")
        if subdomain and (holder := _subdomain_holder(fake, subdomain, resource_id)):
            return arm_error(400, "CustomDomainInUse", f"Custom domain name '{subdomain}' is already in use"
                             + (" by a soft-deleted resource." if holder == "deleted" else "."))
        props.pop("restore", None)
        props.update(provisioningState="Succeeded",
                     endpoint=endpoint(fake, subdomain) if subdomain
                     else f"https://{location}.api.cognitive.microsoft.com/")
        body = {"id": resource_id, "name": match["name"], "type": "Microsoft.CognitiveServices/accounts",
                "location": location, "kind": request.get("kind"), "sku": request.get("sku"),
                "etag": _etag(), "tags": request.get("tags") or {},
                "identity": _identity(request.get("identity")), "properties": props}
        fake.put(resource_id, body)
        return _accepted(fake, 200 if existing else 201, body, location)
    return handler


def _patch_account(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_version(call)) is not None:
            return error
        body = fake.get(account_id(fake, match["name"]))
        if body is None:
            return not_found(call.path)
        patch = call.body or {}
        props = patch.get("properties") or {}
        if props.get("customSubDomainName") not in (None, body["properties"]["customSubDomainName"]):
            return arm_error(400, "CustomSubDomainNameCannotBeChanged",
                             "The custom subdomain name of an account cannot be changed once set.")
        body["properties"].update(props)
        for key in ("sku", "tags"):
            if patch.get(key) is not None:
                body[key] = patch[key]
        if patch.get("identity") is not None:
            body["identity"] = _identity(patch["identity"])
        body["etag"] = _etag()
        return _accepted(fake, 202, body, body["location"])
    return handler


def _delete_account(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_version(call)) is not None:
            return error
        resource_id = account_id(fake, match["name"])
        body = fake.delete(resource_id)
        if body is None:
            return 204, {}, None
        prefix = resource_id.lower() + "/"
        for key in [k for k in fake.resources if k.startswith(prefix)]:
            del fake.resources[key]  # its projects and the role assignments under it
        _deleted(fake)[deleted_id(fake, body["location"], match["name"]).lower()] = {"account": body}
        return _accepted(fake, 202, None, body["location"])
    return handler


def _get_deleted(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        entry = _deleted(fake).get(call.path.lower())
        if entry is None:
            return not_found(call.path)
        account = entry["account"]
        return 200, {}, {"id": call.path, "name": account["name"], "type":
                         "Microsoft.CognitiveServices/deletedAccounts", "location": account["location"],
                         "kind": account["kind"], "sku": account["sku"],
                         "properties": {**account["properties"], "deletionDate": "2026-12-04T00:00:00Z",
                                        "scheduledPurgeDate": "2026-12-06T00:00:00Z"}}
    return handler


def _purge(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_version(call)) is not None:
            return error
        if _deleted(fake).pop(call.path.lower(), None) is None:
            return 204, {}, None
        return _accepted(fake, 202, None, match["loc"])
    return handler


def _put_project(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_version(call)) is not None:
            return error
        account = fake.get(account_id(fake, match["name"]))
        if account is None:
            return arm_error(404, "ParentResourceNotFound", f"Can not perform requested operation on nested "
                             f"resource. Parent resource '{match['name']}' not found.")
        props = account["properties"]
        if account["kind"] != "AIServices" or not props.get("allowProjectManagement"):
            return arm_error(400, "BadRequest", "Projects need an AIServices account with allowProjectManagement.")
        if account["identity"]["type"] == "None":
            return arm_error(400, "BadRequest", "Projects need an account with a managed identity.")
        request = call.body or {}
        location = str(request.get("location") or "").replace(" ", "").lower()
        if location != account["location"]:
            return arm_error(400, "LocationMismatch", f"A project must be in its account's location "
                             f"'{account['location']}', not '{request.get('location')}'.")
        project_id = f"{account['id']}/projects/{match['project']}"
        existing = fake.get(project_id)
        first = not fake.children(account["id"], "projects")
        subdomain = props["customSubDomainName"]
        body = {"id": project_id, "name": match["project"], "type": "Microsoft.CognitiveServices/accounts/projects",
                "location": location, "etag": _etag(), "tags": request.get("tags") or {},
                "identity": _identity(request.get("identity")),
                "properties": {**(request.get("properties") or {}), "provisioningState": "Succeeded",
                               "isDefault": existing["properties"]["isDefault"] if existing else first,
                               "endpoints": {"AI Foundry API": f"https://{subdomain}.services.ai.azure.com/api/"
                                                               f"projects/{match['project']}"}}}
        fake.put(project_id, body)
        return _accepted(fake, 200 if existing else 201, body, location)
    return handler


def _patch_project(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_version(call)) is not None:
            return error
        body = fake.get(call.path)
        if body is None:
            return not_found(call.path)
        patch = call.body or {}
        body["properties"].update(patch.get("properties") or {})
        if patch.get("tags") is not None:
            body["tags"] = patch["tags"]
        if patch.get("identity") is not None:
            body["identity"] = _identity(patch["identity"])
        return _accepted(fake, 202, body, body["location"])
    return handler


def _delete_project(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_version(call)) is not None:
            return error
        body = fake.delete(call.path)
        if body is None:
            return 204, {}, None
        prefix = call.path.lower() + "/"
        for key in [k for k in fake.resources if k.startswith(prefix)]:
            del fake.resources[key]
        return _accepted(fake, 202, None, body["location"])
    return handler


def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_version(call)) is not None:
            return error
        body = fake.get(call.path)
        return (200, {}, body) if body is not None else not_found(call.path)
    return handler


def _operation(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        polls = fake.state.get("cognitive.operations", {})
        if match["op"] not in polls:
            return arm_error(404, "OperationNotFound", f"Operation {match['op']} was not found.")
        polls[match["op"]] += 1
        status = "InProgress" if polls[match["op"]] == 1 else "Succeeded"
        return 200, {"Retry-After": "0"} if status == "InProgress" else {}, {"id": call.path, "status": status}
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("GET", ACCOUNT_PATH, _get(fake))
    fake.route("PUT", ACCOUNT_PATH, _put_account(fake))
    fake.route("PATCH", ACCOUNT_PATH, _patch_account(fake))
    fake.route("DELETE", ACCOUNT_PATH, _delete_account(fake))
    fake.route("GET", PROJECT_PATH, _get(fake))
    fake.route("PUT", PROJECT_PATH, _put_project(fake))
    fake.route("PATCH", PROJECT_PATH, _patch_project(fake))
    fake.route("DELETE", PROJECT_PATH, _delete_project(fake))
    fake.route("GET", DELETED_PATH, _get_deleted(fake))
    fake.route("DELETE", DELETED_PATH, _purge(fake))
    fake.route("GET", OPERATION_PATH, _operation(fake))
