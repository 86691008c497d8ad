"""Microsoft.CognitiveServices accounts/raiPolicies (content-filter policies) at api-version
2025-06-01, in the shapes of azure-rest-api-specs' PutRaiPolicy.json, GetRaiPolicy.json and
DeleteRaiPolicy.json: PUT answers 201 (new) or 200 with the policy (`properties.type`
UserManaged), synchronously; DELETE 200 (204 when absent); GET 404 when absent.

Rules kept: the account must exist (404 ParentResourceNotFound); a filter's name is one of
Azure's categories (400 InvalidContentFilter otherwise); a harm category needs a
severityThreshold; a category and source appear once.
"""

from __future__ import annotations

from typing import Any

from azurefake import FakeAzure, Reply, arm_error, not_found
from azurefake.families.cognitive import ACCOUNT_PATH, API

POLICY_PATH = ACCOUNT_PATH + r"/raiPolicies/(?P<policy>[A-Za-z0-9_.-]+)"
HARM = {"Hate", "Sexual", "Selfharm", "Violence"}
OTHERS = {"Jailbreak", "Indirect Attack", "Protected Material Text", "Protected Material Code"}


def _version(call: Any) -> Reply | None:
    if call.api_version != API:
        return arm_error(400, "InvalidApiVersionParameter", f"api-version {call.api_version} is not {API} here")
    return None


def _put(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _version(call)) is not None:
            return error
        account = call.path.rsplit("/raiPolicies/", 1)[0]
        if fake.get(account) is None:
            return arm_error(404, "ParentResourceNotFound", f"Can not perform requested operation on nested "
                             f"resource. Parent resource '{match['name']}' not found.")
        props = dict((call.body or {}).get("properties") or {})
        seen = set()
        for item in props.get("contentFilters") or []:
            name = item.get("name")
            if name not in HARM | OTHERS:
                return arm_error(400, "InvalidContentFilter", f"Content filter '{name}' is not supported.")
            if name in HARM and not item.get("severityThreshold"):
                return arm_error(400, "InvalidContentFilter", f"Content filter '{name}' needs a severityThreshold.")
            key = (name, item.get("source"))
            if key in seen:
                return arm_error(400, "InvalidContentFilter", f"Content filter '{name}' for {key[1]} is duplicated.")
            seen.add(key)
        existing = fake.get(call.path)
        body = {"id": call.path, "name": match["policy"], "type": "Microsoft.CognitiveServices/accounts/raiPolicies",
                "etag": "\"1\"", "tags": (call.body or {}).get("tags") or {},
                "properties": {"type": "UserManaged", "basePolicyName": props.get("basePolicyName"),
                               "mode": props.get("mode") or "Default",
                               "contentFilters": props.get("contentFilters") or [],
                               "customBlocklists": props.get("customBlocklists") or []}}
        fake.put(call.path, body)
        return (200 if existing else 201), {}, body
    return handler


def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _version(call)) is not None:
            return error
        body = fake.get(call.path)
        return (200, {}, body) if body is not None else not_found(call.path)
    return handler


def _delete(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _version(call)) is not None:
            return error
        return (200, {}, None) if fake.delete(call.path) is not None else (204, {}, None)
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("GET", POLICY_PATH, _get(fake))
    fake.route("PUT", POLICY_PATH, _put(fake))
    fake.route("DELETE", POLICY_PATH, _delete(fake))
