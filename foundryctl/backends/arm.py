"""ARM resource ids, built and taken apart the way Azure writes them (both backends use them:
the local one for its emulated control plane, the azure one for the real ids)."""

from __future__ import annotations

WORKSPACES = "Microsoft.MachineLearningServices/workspaces"
ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments"
PROVIDERS = "Microsoft.Resources/providers"
DATA = f"{WORKSPACES}/data"
DATA_VERSIONS = f"{WORKSPACES}/data/versions"
JOBS = f"{WORKSPACES}/jobs"
MODELS = f"{WORKSPACES}/models"
MODEL_VERSIONS = f"{WORKSPACES}/models/versions"
ENDPOINTS = f"{WORKSPACES}/serverlessEndpoints"
COGNITIVE_ACCOUNTS = "Microsoft.CognitiveServices/accounts"
ACCOUNT_PROJECTS = f"{COGNITIVE_ACCOUNTS}/projects"
# A Foundry project's fine-tuning job as foundryctl names it (Azure's job lives in the account,
# as ftjob-ID; the local backend keeps it under the project).
ACCOUNT_FINETUNING_JOBS = f"{ACCOUNT_PROJECTS}/fineTuningJobs"
RAI_POLICIES = f"{COGNITIVE_ACCOUNTS}/raiPolicies"
ACCOUNT_DEPLOYMENTS = f"{COGNITIVE_ACCOUNTS}/deployments"
DELETED_ACCOUNTS = "Microsoft.CognitiveServices/deletedAccounts"


def subscription_id(sub: str) -> str:
    return f"/subscriptions/{sub}"


def resource_group_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def workspace_id(sub: str, rg: str, name: str) -> str:
    return f"{resource_group_id(sub, rg)}/providers/{WORKSPACES}/{name}"


def cognitive_account_id(sub: str, rg: str, name: str) -> str:
    return f"{resource_group_id(sub, rg)}/providers/{COGNITIVE_ACCOUNTS}/{name}"


def account_project_id(account: str, name: str) -> str:
    return f"{account}/projects/{name}"


def deleted_account_id(sub: str, location: str, rg: str, name: str) -> str:
    """Where a soft-deleted Cognitive Services account waits to be recovered or purged."""
    return (f"/subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/{location}/"
            f"resourceGroups/{rg}/deletedAccounts/{name}")


def scope_resource_id(sub: str, rg: str, scope: dict) -> str:
    """The ARM id of a RoleAssignment's scope in its manifest form ({hub: NAME}, ...)."""
    if scope.get("hub"):
        return workspace_id(sub, rg, scope["hub"])
    if scope.get("project"):
        return workspace_id(sub, rg, scope["project"])
    if scope.get("foundry_project"):
        account = cognitive_account_id(sub, rg, scope["foundry_account"])
        return account_project_id(account, scope["foundry_project"])
    if scope.get("foundry_account"):
        return cognitive_account_id(sub, rg, scope["foundry_account"])
    return resource_group_id(sub, rg)


def foundry_scope(scope_id: str) -> dict | None:
    """The manifest form of a Foundry account or project id, or None for any other id."""
    parts = scope_id.rstrip("/").split("/")
    lowered = [p.lower() for p in parts]
    marker = ["providers", "microsoft.cognitiveservices", "accounts"]
    for index in range(len(parts) - 3):
        if lowered[index:index + 3] == marker:
            rest = parts[index + 3:]
            if len(rest) == 1:
                return {"foundry_account": rest[0]}
            if len(rest) == 3 and rest[1].lower() == "projects":
                return {"foundry_account": rest[0], "foundry_project": rest[2]}
            return None
    return None


def data_id(workspace: str, name: str) -> str:
    return f"{workspace}/data/{name}"


def data_version_id(workspace: str, name: str, version: str) -> str:
    return f"{data_id(workspace, name)}/versions/{version}"


def job_id(workspace: str, name: str) -> str:
    return f"{workspace}/jobs/{name}"


def model_id(workspace: str, name: str) -> str:
    return f"{workspace}/models/{name}"


def endpoint_id(workspace: str, name: str) -> str:
    return f"{workspace}/serverlessEndpoints/{name}"


def workspace_of(resource_id: str) -> str | None:
    """The workspace id a child resource (data asset, job, model) lives in."""
    marker = f"/providers/{WORKSPACES}/".lower()
    index = resource_id.lower().find(marker)
    if index < 0:
        return None
    rest = resource_id[index + len(marker):].split("/", 1)[0]
    return resource_id[:index + len(marker)] + rest


def workspace_child(resource_id: str, child_type: str) -> tuple[str, str] | None:
    """`.../workspaces/W/{child_type}/NAME[/...]` -> (W, NAME), or None for another id
    (`child_type`: data, jobs, models, serverlessEndpoints; matched in any case)."""
    parts = resource_id.rstrip("/").split("/")
    lowered = [p.lower() for p in parts]
    for index in range(len(parts) - 3):
        if lowered[index] == "workspaces" and lowered[index + 2] == child_type.lower():
            return parts[index + 1], parts[index + 3]
    return None


def provider_id(sub: str, namespace: str) -> str:
    return f"/subscriptions/{sub}/providers/{namespace}"


def role_definition_id(sub: str, role_guid: str) -> str:
    return f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"


def role_assignment_id(scope: str, name: str) -> str:
    return f"{scope.rstrip('/')}/providers/{ROLE_ASSIGNMENTS}/{name}"


def last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def covers(scope: str, resource_id: str) -> bool:
    """ARM scopes nest by path: a resource group covers everything inside it."""
    scope, resource_id = scope.rstrip("/").lower(), resource_id.rstrip("/").lower()
    return resource_id == scope or resource_id.startswith(scope + "/")


def scope_of_assignment(assignment_id: str) -> str:
    marker = f"/providers/{ROLE_ASSIGNMENTS}/".lower()
    index = assignment_id.lower().rfind(marker)
    return assignment_id[:index] if index >= 0 else assignment_id
