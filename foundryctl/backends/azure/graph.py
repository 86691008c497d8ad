"""Microsoft Graph, for the one thing foundryctl asks it: what kind of directory object a
principal id is (GET /v1.0/directoryObjects/{id}, with the same azure-identity credential).

ARM refuses a role assignment whose principalType is not the principal's own (400
UnmatchedPrincipalType), so a RoleAssignment that leaves `principal_type` out gets it from here.
Reading directory objects needs a Graph permission (Directory.Read.All, or the Directory
Readers role); a service principal in CI often lacks it, and then the manifest must say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

# Graph's @odata.type of a directory object -> ARM's principalType (managed identities are
# service principals in Graph).
PRINCIPAL_TYPES = {
    "#microsoft.graph.user": "User",
    "#microsoft.graph.servicePrincipal": "ServicePrincipal",
    "#microsoft.graph.group": "Group",
    "#microsoft.graph.device": "Device",
}
TIMEOUT = 30.0


@dataclass(frozen=True)
class Lookup:
    """A principal's type, or why Graph could not say (`problem`: Azure's code and message)."""

    principal_type: str | None
    status: int
    problem: str = ""


def principal_type(credential: Any, endpoint: str, object_id: str) -> Lookup:
    from azure.core.exceptions import AzureError

    endpoint = endpoint.rstrip("/")
    try:
        token = credential.get_token(f"{endpoint}/.default").token
    except AzureError as exc:  # no Graph token for this identity (a credential scoped to ARM)
        return Lookup(None, 0, f"no Microsoft Graph token: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    try:
        response = requests.get(f"{endpoint}/v1.0/directoryObjects/{object_id}",
                                headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return Lookup(None, 0, f"Microsoft Graph is unreachable ({type(exc).__name__})")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200:
        odata_type = str(body.get("@odata.type", ""))
        found = PRINCIPAL_TYPES.get(odata_type)
        return Lookup(found, 200, "" if found else f"directory object of type {odata_type or 'unknown'}")
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    return Lookup(None, response.status_code,
                  f"{error.get('code') or f'Http{response.status_code}'}: {error.get('message') or response.reason}")
