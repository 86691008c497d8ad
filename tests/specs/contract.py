"""The recorder pass: every ARM request a contract test sent, checked against the vendored specs.

An ARM write with a JSON body must match a vendored operation at the api-version the SDK
used, and its body must validate; otherwise the test fails. Operations whose spec files are
not vendored yet are listed in PENDING with the api-version the SDKs send, so a new
operation or an SDK that moves to another api-version fails loudly instead of passing
unchecked. Bodies to other hosts (run history, blob storage) are not ARM and not covered by
azure-rest-api-specs' resource-manager specs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from specs.validate import SpecRegistry

ARM_HOST = "management.azure.com"


@dataclass(frozen=True)
class Pending:
    method: str
    path: str  # regex on the path
    api_version: str
    why: str


_WS = r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+"
_MFE = "spec not vendored yet (mfe.json of this api-version)"
_CS = r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.CognitiveServices/accounts/[^/]+"
_CS_WHY = "cognitiveservices.json 2025-06-01 Account/Project definitions not vendored yet"
PENDING = (
    Pending("PUT", r"/subscriptions/[^/]+/resourcegroups/[^/]+/providers/Microsoft\.Resources/deployments/[^/]+",
            "2020-06-01", "hub/project ARM template deployment: resources.json not vendored yet"),
    Pending("PATCH", _WS, "2024-10-01-preview", "workspaceRP.json not vendored yet"),
    Pending("PUT", _WS + r"/data/[^/]+/versions/[^/]+", "2023-04-01-preview", _MFE),
    Pending("POST", _WS + r"/datastores/[^/]+/listSecrets", "2024-10-01-preview", _MFE),
    Pending("PUT", _WS + r"/jobs/[^/]+", "2024-10-01-preview", _MFE),
    Pending("PUT", _WS + r"/models/[^/]+/versions/[^/]+", "2023-08-01-preview", _MFE),
    Pending("PUT", _WS + r"/serverlessEndpoints/[^/]+", "2024-10-01", _MFE),
    Pending("POST", _WS + r"/serverlessEndpoints/[^/]+/regenerateKeys", "2024-01-01-preview", _MFE),
    Pending("PUT", _CS, "2025-06-01", _CS_WHY),
    Pending("PATCH", _CS, "2025-06-01", _CS_WHY),
    Pending("PUT", _CS + r"/projects/[^/]+", "2025-06-01", _CS_WHY),
    Pending("PUT", _CS + r"/deployments/[^/]+", "2025-06-01",
            "cognitiveservices.json 2025-06-01 Deployment definitions not vendored yet"),
)


@lru_cache(maxsize=1)
def registry() -> SpecRegistry:
    return SpecRegistry()


def _pending(method: str, path: str, api_version: str | None) -> Pending | None:
    return next((p for p in PENDING if p.method == method and p.api_version == api_version
                 and re.fullmatch(p.path, path, re.IGNORECASE)), None)


def check_call(method: str, url: str, api_version: str | None, body: Any) -> list[str]:
    """Problems with one recorded request (empty when it conforms or is out of scope)."""
    split = urlsplit(url)
    if split.hostname != ARM_HOST:
        return []
    specs = registry()
    operation = specs.operation(method, split.path, api_version)
    if operation is not None:
        return [str(v) for v in specs.check(operation, body)]
    has_body = isinstance(body, (dict, list))
    if not has_body or _pending(method, split.path, api_version):
        return []
    versions = sorted({op.api_version for op in specs.find(method, split.path)})
    known = f" (vendored api-versions: {', '.join(versions)})" if versions else ""
    return [f"{method} {split.path} api-version {api_version}: no vendored spec for this operation{known}; "
            "vendor it under tests/specs/azure-rest-api-specs (see PROVENANCE.md) or list it in "
            "tests/specs/contract.py PENDING"]


def check_calls(calls: Iterable[Any]) -> list[str]:
    """Problems with every recorded call (azurefake.Call objects), de-duplicated, in order."""
    problems: list[str] = []
    for call in calls:
        for problem in check_call(call.method, call.url, call.api_version, call.body):
            if problem not in problems:
                problems.append(problem)
    return problems
