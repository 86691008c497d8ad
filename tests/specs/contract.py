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
# operation fails loudly instead of passing unchecked. Empty: every ARM write the backend sends is vendored.
PENDING: tuple[Pending, ...] = ()


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
        problems = [str(v) for v in specs.check(operation, body) if not _tolerated(v, operation.operation_id)]
        if operation.operation_id == "Deployments_CreateOrUpdate":
            problems += [f"{method} {split.path}: {p}" for p in template_parameter_problems(body)]
        return problems
    has_body = isinstance(body, (dict, list))
    if not has_body or _pending(method, split.path, api_version):
        return []
    versions = sorted({op.api_version for op in specs.find(method, split.path)})
    known = f" (vendored api-versions: {', '.join(versions)})" if versions else ""
    return [f"{method} {split.path} api-version {api_version}: no vendored spec for this operation{known}; "
            "vendor it under tests/specs/azure-rest-api-specs (see PROVENANCE.md) or list it in "
            "tests/specs/contract.py PENDING"]


_TEMPLATE_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "securestring": (str,), "int": (int,), "bool": (bool,),
    "object": (dict,), "secureobject": (dict,), "array": (list,)}


def template_parameter_problems(body: Any) -> list[str]:
    """An inline ARM template's own rules for the values it is given: resources.json leaves
    `template` and `parameters` free-form, but ARM refuses a deployment (InvalidTemplate) whose
    parameter is undeclared, missing (or null) without a default, of another type, or not one of
    the parameter's allowedValues (compared without regard to case, as ARM does for strings)."""
    properties = (body or {}).get("properties") or {} if isinstance(body, dict) else {}
    template, given = properties.get("template"), properties.get("parameters") or {}
    if not isinstance(template, dict) or not isinstance(given, dict):
        return []  # a templateLink or parametersLink: nothing inline to check
    declared = {k.lower(): (k, v) for k, v in (template.get("parameters") or {}).items()}
    problems = []
    for name, entry in given.items():
        if name.lower() not in declared:
            problems.append(f"template parameter {name!r} is not declared by the template")
            continue
        if not isinstance(entry, dict) or "value" not in entry:
            continue  # a Key Vault reference: resolved by ARM
        rule, value = declared[name.lower()][1], entry["value"]
        if value is None:  # ARM takes null as not given (azure-ai-ml sends many): the default then
            if "defaultValue" not in rule:
                problems.append(f"template parameter {name!r} is null and has no defaultValue")
            continue
        kinds = _TEMPLATE_TYPES.get(str(rule.get("type", "")).lower())
        if kinds and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            problems.append(f"template parameter {name!r}: {value!r} is not of type {rule.get('type')}")
            continue
        allowed = rule.get("allowedValues")
        if allowed is not None and _folded(value) not in [_folded(a) for a in allowed]:
            problems.append(f"template parameter {name!r}: {value!r} is not one of the allowedValues {allowed}")
    given_names = {k.lower() for k in given}
    for key, (name, rule) in declared.items():
        if key not in given_names and "defaultValue" not in rule:
            problems.append(f"template parameter {name!r} has no value and no defaultValue")
    return problems


def _folded(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def check_calls(calls: Iterable[Any]) -> list[str]:
    """Problems with every recorded call (azurefake.Call objects), de-duplicated, in order."""
    problems: list[str] = []
    for call in calls:
        for problem in check_call(call.method, call.url, call.api_version, call.body):
            if problem not in problems:
                problems.append(problem)
    return problems
