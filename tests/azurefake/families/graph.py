"""Microsoft Graph's directoryObjects (GET /v1.0/directoryObjects/{id}), on the same loopback
`responses` mock: the fake tenant's directory, which the roleAssignments family consults too.

Every GUID not registered otherwise is a user of the tenant (what most tests assign roles to);
`directory_object` registers a service principal, a group, or an id Graph does not know;
`deny_graph` answers 403 Authorization_RequestDenied, as Graph does to an identity without
Directory.Read.All (a CI service principal, commonly). Shapes follow Graph v1.0's
directoryObject: `@odata.type` names the derived type.
"""

from __future__ import annotations

from typing import Any

from azurefake import FakeAzure, Reply

GRAPH = "https://graph.microsoft.com"
OBJECT_PATH = r"/v1\.0/directoryObjects/(?P<id>[^/]+)"
ODATA_TYPES = {"User": "#microsoft.graph.user", "ServicePrincipal": "#microsoft.graph.servicePrincipal",
               "Group": "#microsoft.graph.group", "Device": "#microsoft.graph.device"}
UNKNOWN = "unknown"


def directory_object(fake: FakeAzure, object_id: str, principal_type: str) -> None:
    """Register `object_id` as a User, ServicePrincipal, Group or Device (or UNKNOWN: absent)."""
    fake.state.setdefault("graph.directory", {})[object_id.lower()] = principal_type


def deny_graph(fake: FakeAzure) -> None:
    fake.state["graph.denied"] = True


def principal_type_of(fake: FakeAzure, object_id: str) -> str | None:
    """The directory's type of `object_id`; None when the tenant has no such object."""
    found = fake.state.get("graph.directory", {}).get(object_id.lower(), "User")
    return None if found == UNKNOWN else found


def _error(status: int, code: str, message: str) -> Reply:
    return status, {}, {"error": {"code": code, "message": message,
                                  "innerError": {"date": "2026-11-25T10:00:00",
                                                 "request-id": "7d1e7b3c-3f1c-4a8e-9a55-0f4b0c1d2e3f"}}}


def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if not call.headers.get("Authorization", "").startswith("Bearer "):
            return _error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if fake.state.get("graph.denied"):
            return _error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        object_id = match["id"]
        found = principal_type_of(fake, object_id)
        if found is None:
            return _error(404, "Request_ResourceNotFound",
                          f"Resource '{object_id}' does not exist or one of its queried reference-property "
                          "objects are not present.")
        body = {"@odata.context": f"{GRAPH}/v1.0/$metadata#directoryObjects/$entity",
                "@odata.type": ODATA_TYPES[found], "id": object_id}
        return 200, {}, body
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("GET", OBJECT_PATH, _get(fake), host=GRAPH)
