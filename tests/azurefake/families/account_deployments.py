"""Microsoft.CognitiveServices accounts/deployments at api-version 2025-06-01: model
deployments of a Foundry account, in the shape Learn's fine-tuned model deployment shows
({"sku": {"name", "capacity"}, "properties": {"model": {"format": "OpenAI", "name", "version"},
"raiPolicyName"}}). PUT answers 201 (new) or 200 with provisioningState Succeeded; DELETE 200
(204 when absent); GET 404 when absent.

Rules kept: the account must exist; a fine-tuned model deploys as Standard, GlobalStandard or
Developer; the model must be a fine-tuned model of this account (a succeeded job of the
openai_finetuning family's server, when it runs); raiPolicyName must be a policy of the account
or one of Azure's defaults.
"""

from __future__ import annotations

from typing import Any

from azurefake import FakeAzure, Reply, arm_error, not_found
from azurefake.families.cognitive import ACCOUNT_PATH, API

DEPLOYMENT_PATH = ACCOUNT_PATH + r"/deployments/(?P<deployment>[A-Za-z0-9_.-]+)"
FINE_TUNED_SKUS = ("Standard", "GlobalStandard", "Developer")
DEFAULT_POLICIES = ("Microsoft.Default", "Microsoft.DefaultV2")


def _put(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if call.api_version != API:
            return arm_error(400, "InvalidApiVersionParameter", f"api-version {call.api_version} is not {API} here")
        account_id = call.path.rsplit("/deployments/", 1)[0]
        account = fake.get(account_id)
        if account is None:
            return arm_error(404, "ParentResourceNotFound", f"Parent resource '{match['name']}' not found.")
        request = call.body or {}
        sku = request.get("sku") or {}
        props = dict(request.get("properties") or {})
        model = props.get("model") or {}
        if sku.get("name") not in FINE_TUNED_SKUS:
            return arm_error(400, "InvalidResourceProperties",
                             f"The specified SKU '{sku.get('name')}' is not supported for fine-tuned models.")
        server = fake.state.get("openai.finetuning")
        subdomain = str(account["properties"].get("customSubDomainName") or "")
        if server is not None and not any(
                j["fine_tuned_model"] == model.get("name") and j["_account"] == subdomain for j in server.jobs.values()):
            return arm_error(400, "DeploymentModelNotSupported",
                             f"The model '{model.get('name')}' is not a fine-tuned model of this resource.")
        policy = props.get("raiPolicyName")
        if policy and policy not in DEFAULT_POLICIES and fake.get(f"{account_id}/raiPolicies/{policy}") is None:
            return arm_error(400, "InvalidResourceProperties", f"The RAI policy '{policy}' was not found.")
        existing = fake.get(call.path)
        body = {"id": call.path, "name": match["deployment"], "type": "Microsoft.CognitiveServices/accounts/deployments",
                "sku": {"name": sku["name"], "capacity": sku.get("capacity", 1)},
                "properties": {"model": model, "raiPolicyName": policy or "Microsoft.DefaultV2",
                               "provisioningState": "Succeeded"}}
        fake.put(call.path, body)
        return (200 if existing else 201), {}, body
    return handler


def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        body = fake.get(call.path)
        return (200, {}, body) if body is not None else not_found(call.path)
    return handler


def _delete(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        return (200, {}, None) if fake.delete(call.path) is not None else (204, {}, None)
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("GET", DEPLOYMENT_PATH, _get(fake))
    fake.route("PUT", DEPLOYMENT_PATH, _put(fake))
    fake.route("DELETE", DEPLOYMENT_PATH, _delete(fake))
