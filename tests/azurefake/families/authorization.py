"""Microsoft.Authorization roleAssignments (api-version 2022-04-01), as ARM answers them.

Shapes follow azure-rest-api-specs Microsoft.Authorization/stable/2022-04-01/examples
(RoleAssignments_CreateForResourceGroup.json, _Get.json, _Delete.json, _ListForScope.json),
with the properties a live service adds (description, condition, createdOn, updatedOn...).
Rules kept from the real service:
- PUT of a new name answers 201, of an existing name 200 (only description and condition
  may change; another principal, role or scope is 400 RoleAssignmentUpdateNotPermitted);
- the same (scope, principal, role) under another name is 409 RoleAssignmentExists;
- an unknown role definition is 400 RoleDefinitionDoesNotExist;
- a principal Entra ID has not replicated yet is 400 PrincipalNotFound (`pending_principal`);
- a principalType that is not the directory's type of the principal (families/graph.py) is
  400 UnmatchedPrincipalType, with the service's wording (its "PrinciaplType" included);
- GET of a missing assignment is 404 RoleAssignmentNotFound; DELETE answers 200 with the
  assignment, or 204 when there is none.
"""

from __future__ import annotations

from typing import Any

from azurefake import FakeAzure, Reply, arm_error
from azurefake.families.graph import principal_type_of
from azurefake.fixtures import SIGNED_IN, TENANT

ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
SCOPE = r"(?P<scope>/subscriptions/[^/]+(?:/.*?)?)"
ASSIGNMENT_PATH = SCOPE + r"/providers/Microsoft\.Authorization/roleAssignments/(?P<name>[^/]+)"
LIST_PATH = SCOPE + r"/providers/Microsoft\.Authorization/roleAssignments"
CREATED_BY = SIGNED_IN  # the signed-in user's object id
NOW = "2026-11-25T10:00:00.0000000Z"

# Built-in role definitions (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
BUILT_IN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "53ca6127-db72-4b80-b1b0-d745d6d5456d": "Foundry User",
    "c883944f-8b7b-4483-af10-35834be79c4a": "Foundry Owner",
    "e47c6f54-e4a2-4754-9501-8e0985b135e1": "Foundry Account Owner",
    "eadc314b-1a2d-4efa-be10-5d325db5065e": "Foundry Project Manager",
    "64702f94-c441-49e6-a78b-ef80e0188fee": "Azure AI Developer",
    "3afb7f49-54cb-416e-8c09-6dc049efa503": "Azure AI Inference Deployment Operator",
    "b78c5d69-af96-48a3-bf8d-a8b4d589de94": "Azure AI Administrator",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
}


def holds_role(fake: FakeAzure, principal: str, scope: str, role_guids: set[str]) -> bool:
    """Whether `principal` is assigned one of `role_guids` at `scope` or above it."""
    scope = scope.lower().rstrip("/")
    for a in _assignments(fake):
        props = a["properties"]
        at = props["scope"].lower().rstrip("/")
        if (props["principalId"].lower() == principal.lower() and _guid(props["roleDefinitionId"]) in role_guids
                and (scope == at or scope.startswith(at + "/"))):
            return True
    return False


def assignment_id(scope: str, name: str) -> str:
    return f"{scope.rstrip('/')}/providers/{ROLE_ASSIGNMENTS}/{name}"


def role_definition_id(fake: FakeAzure, guid: str) -> str:
    return f"/subscriptions/{fake.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def assignment_body(fake: FakeAzure, scope: str, name: str, *, principal: str, role_guid: str,
                    principal_type: str = "User", description: str | None = None) -> dict[str, Any]:
    return {
        "properties": {
            "roleDefinitionId": role_definition_id(fake, role_guid),
            "principalId": principal,
            "principalType": principal_type,
            "scope": scope,
            "condition": None,
            "conditionVersion": None,
            "createdOn": NOW,
            "updatedOn": NOW,
            "createdBy": CREATED_BY,
            "updatedBy": CREATED_BY,
            "delegatedManagedIdentityResourceId": None,
            "description": description,
        },
        "id": assignment_id(scope, name),
        "type": ROLE_ASSIGNMENTS,
        "name": name,
    }


def seed_assignment(fake: FakeAzure, scope: str, name: str, **properties: Any) -> dict[str, Any]:
    """Put a role assignment in the fake directly (made in the portal, or by an earlier run)."""
    return fake.put(assignment_id(scope, name), assignment_body(fake, scope, name, **properties))


def pending_principal(fake: FakeAzure, principal: str, failures: int) -> None:
    """The next `failures` assignments to `principal` answer PrincipalNotFound (a principal
    just created, not yet replicated in Entra ID); -1 for a principal that never appears."""
    fake.state.setdefault("pending_principals", {})[principal.lower()] = failures


def _assignments(fake: FakeAzure) -> list[dict[str, Any]]:
    marker = f"/providers/{ROLE_ASSIGNMENTS}/".lower()
    return [r for k, r in fake.resources.items() if marker in k]


def _guid(role_definition: str) -> str:
    return role_definition.rstrip("/").rsplit("/", 1)[-1].lower()


def _same_triple(a: dict[str, Any], scope: str, principal: str, role_guid: str) -> bool:
    props = a["properties"]
    return (props["scope"].lower() == scope.lower() and props["principalId"].lower() == principal.lower()
            and _guid(props["roleDefinitionId"]) == role_guid)


def _put(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        scope, name = match["scope"], match["name"]
        props = (call.body or {}).get("properties") or {}
        missing = [k for k in ("roleDefinitionId", "principalId") if not props.get(k)]
        if missing:
            return arm_error(400, "InvalidRequestContent", f"The request content is missing {', '.join(missing)}.")
        principal, role_guid = props["principalId"], _guid(props["roleDefinitionId"])
        if role_guid not in BUILT_IN_ROLES:
            return arm_error(400, "RoleDefinitionDoesNotExist",
                             f"The specified role definition with ID '{role_guid}' does not exist.")
        pending = fake.state.get("pending_principals", {})
        left = pending.get(principal.lower(), 0)
        if left:
            pending[principal.lower()] = left - 1 if left > 0 else left
            return arm_error(400, "PrincipalNotFound", (
                f"Principal {principal.replace('-', '')} does not exist in the directory {TENANT}. "
                "Check that you have the correct principal ID. If you are creating this principal and "
                "then immediately assigning a role, this error might be related to a replication delay. "
                "In this case, set the role assignment principalType property to a value, such as "
                "ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype"))
        actual = principal_type_of(fake, principal)
        wanted = props.get("principalType") or "User"
        if actual is not None and actual != wanted:
            return arm_error(400, "UnmatchedPrincipalType", (
                f"The PrincipalId '{principal.replace('-', '')}' has type '{actual}' , which is different "
                f"from specified PrinciaplType '{wanted}'."))
        existing = fake.get(assignment_id(scope, name))
        if existing is not None:
            if not _same_triple(existing, scope, principal, role_guid):
                return arm_error(400, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, "
                                 "principal ID, and scope are not allowed to be updated.")
            existing["properties"]["description"] = props.get("description")
            existing["properties"]["updatedOn"] = "2026-11-25T11:00:00.0000000Z"
            return 200, {}, existing
        if any(_same_triple(a, scope, principal, role_guid) for a in _assignments(fake)):
            return arm_error(409, "RoleAssignmentExists", "The role assignment already exists.")
        body = assignment_body(fake, scope, name, principal=principal, role_guid=role_guid,
                               principal_type=props.get("principalType") or "User",
                               description=props.get("description"))
        return 201, {}, fake.put(assignment_id(scope, name), body)
    return handler


def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        found = fake.get(assignment_id(match["scope"], match["name"]))
        if found is None:
            return arm_error(404, "RoleAssignmentNotFound", f"The role assignment '{match['name']}' is not found.")
        return 200, {}, found
    return handler


def _delete(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        removed = fake.delete(assignment_id(match["scope"], match["name"]))
        return (200, {}, removed) if removed is not None else (204, {}, None)
    return handler


def _list(fake: FakeAzure) -> Any:
    """Assignments at, above or below the scope; `$filter=principalId eq '...'` narrows them."""
    def handler(call: Any, match: Any) -> Reply:
        scope = match["scope"].lower().rstrip("/")
        wanted = call.query.get("$filter", "")
        principal = wanted.split("'")[1].lower() if wanted.startswith("principalId eq '") else None
        found = []
        for a in _assignments(fake):
            at = a["properties"]["scope"].lower().rstrip("/")
            related = at == scope or scope.startswith(at + "/") or at.startswith(scope + "/")
            if related and (principal is None or a["properties"]["principalId"].lower() == principal):
                found.append(a)
        return 200, {}, {"value": found}
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("PUT", ASSIGNMENT_PATH, _put(fake))
    fake.route("GET", ASSIGNMENT_PATH, _get(fake))
    fake.route("DELETE", ASSIGNMENT_PATH, _delete(fake))
    fake.route("GET", LIST_PATH, _list(fake))
