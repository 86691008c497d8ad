"""FoundryDeployment on Azure: `Microsoft.CognitiveServices/accounts/deployments` at api-version
2025-06-01, through the generic resources client like the account.

- read: GET {id}; 404 is absent.
- create / update: the job's fine-tuned model (the FineTuneJob handler finds the run's job in
  the account's fine-tuning API), then PUT {id} with {"sku": {"name", "capacity"}, "properties":
  {"model": {"format": "OpenAI", "name": MODEL, "version": "1"}, "raiPolicyName": POLICY}}
  (Learn's fine-tuned model deployment body), polled to its end.
- delete: DELETE {id}.
"""

from __future__ import annotations

from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.azure.handlers.foundry import _CognitiveHandler
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.errors import BackendError
from foundryctl.kinds.deployment import RUNNING

# What Azure names when a deployment gives no raiPolicyName.
DEFAULT_POLICIES = ("Microsoft.Default", "Microsoft.DefaultV2")
# ARM provisioning states of a deployment that is, or is becoming, what was asked for.
PROVISIONED = (None, "Succeeded", "Creating", "Accepted", "Updating")


class FoundryDeploymentHandler(_CognitiveHandler):
    kind = "FoundryDeployment"

    def identify(self, target: Target) -> str:
        account = arm.cognitive_account_id(self.subscription, self.resource_group, target.attributes["account"] or "")
        return f"{account}/deployments/{target.name}"

    def observe(self, resource: Any, last_known: dict[str, Any]) -> Observed | None:
        if resource is None:
            return None
        props = resource.properties or {}
        policy = props.get("raiPolicyName")
        if policy in DEFAULT_POLICIES and not last_known.get("rai_policy"):
            policy = None
        sku = resource.sku
        attributes = {**last_known,
                      "account": resource.id.split("/accounts/", 1)[1].split("/", 1)[0],
                      "sku": {"name": getattr(sku, "name", None), "capacity": getattr(sku, "capacity", None)},
                      "rai_policy": policy,
                      # in progress counts as deployed (apply waits for it); Failed or Canceled is drift
                      "status": RUNNING if props.get("provisioningState") in PROVISIONED
                      else props.get("provisioningState")}
        model = props.get("model") or {}
        outputs = {"id": resource.id, "model": model.get("name"), "model_version": model.get("version"),
                   "provisioning_state": props.get("provisioningState"), "rai_policy_name": props.get("raiPolicyName")}
        return Observed(resource.id, attributes, outputs)

    def read(self, target: Target) -> Observed | None:
        return self.observe(self._get(target.backend_id or self.identify(target)), target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self._get(backend_id), {})

    def _apply(self, target: Target, progress: Progress) -> Observed:
        from azure.mgmt.resource.resources.models import GenericResource, Sku

        a = target.attributes
        model = self.backend.handler("FineTuneJob").foundry.model_of(a["account"], a["run"]) if a.get("run") else None
        if model is None:
            raise BackendError("ModelNotReady", f"FineTuneJob.{a['job']} has no fine-tuned model yet",
                               hint="apply the job first and let it finish (a plan orders this for you)")
        properties: dict[str, Any] = {"model": {"format": "OpenAI", "name": model, "version": "1"}}
        if a.get("rai_policy"):
            properties["raiPolicyName"] = a["rai_policy"]
        body = GenericResource(sku=Sku(name=a["sku"]["name"], capacity=a["sku"]["capacity"]), properties=properties)
        resource_id = target.backend_id or self.identify(target)
        self._put(resource_id, body, f"deploying {model} as {target.name}")
        progress(f"deployed {model} ({a['sku']['name']}, capacity {a['sku']['capacity']})")
        observed = self.read(target)
        assert observed is not None
        return observed

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._apply(target, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._apply(target, progress)

    def delete(self, target: Target, progress: Progress) -> None:
        self._delete(target.backend_id or self.identify(target), f"deleting deployment {target.name}")
