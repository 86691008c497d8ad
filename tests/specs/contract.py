"""The recorder pass: every ARM request a contract test sent, checked against the vendored specs.

An ARM write with a JSON body must match a vendored operation at the api-version the SDK
used, and its body must validate; otherwise the test fails. Operations whose spec files are
not vendored yet are listed in PENDING with the api-version the SDKs send, so a new
operation or an SDK that moves to another api-version fails loudly instead of passing
unchecked. Bodies to other hosts (run history, blob storage) are not ARM and not covered by
azure-rest-api-specs' resource-manager specs.

A value the spec refuses but Microsoft's own SDK sends (so the backend cannot avoid it without
patching the SDK) is listed in TOLERATED, one value at one JSON path of one operation, with the
reason; the rest of that body is still checked, and any other value there still fails.
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


# ARM writes whose spec is not vendored yet (with the reason); each is removed once it is, so a new
# operation fails loudly instead of passing unchecked.
_CS = r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.CognitiveServices/accounts/[^/]+"
PENDING: tuple[Pending, ...] = (
    Pending("PUT", _CS + r"/deployments/[^/]+", "2025-06-01",
            "cognitiveservices.json 2025-06-01 Deployment definitions not vendored yet"),
)


@dataclass(frozen=True)
class Tolerated:
    operation_id: str
    json_path: str
    value: str  # the one value accepted there besides the spec's
    why: str


TOLERATED = (
    Tolerated("Jobs_CreateOrUpdate", "$.properties.fineTuningDetails.taskType", "chatCompletion",
              "azure-ai-ml 1.35 lower-cases the first letter of the task it is given "
              "(CustomModelFineTuningJob.__init__), so it sends 'chatCompletion' although its own REST "
              "enum and mfe.json 2024-10-01-preview say 'ChatCompletion'"),
    Tolerated("Deployments_CreateOrUpdate", "$.properties.mode", "incremental",
              "azure-ai-ml 1.35 deploys the hub/project template with mode='incremental' "
              "(ArmDeploymentExecutor); resources.json 2020-06-01 says 'Incremental'"),
)


def _tolerated(violation: Any, operation_id: str) -> bool:
    return any(t.operation_id == operation_id and t.json_path == violation.json_path
               and violation.message.startswith(f"{t.value!r} is not one of") for t in TOLERATED)


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
        return [str(v) for v in specs.check(operation, body) if not _tolerated(v, operation.operation_id)]
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
