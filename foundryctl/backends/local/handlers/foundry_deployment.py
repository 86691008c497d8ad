"""FoundryDeployment on the local backend: the deployment is recorded under its Foundry account
with Azure's checks (the account exists, the model is a fine-tuned model of the account, the
content-filter policy is one of the account's, the sku is a fine-tuned model's deployment
type). It is not served: the local backend serves hub projects' Deployments (their endpoint
processes); a Foundry deployment's inference runs on Azure."""

from __future__ import annotations

from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.errors import BackendError


class FoundryDeploymentHandler(LocalHandler):
    kind = "FoundryDeployment"

    def identify(self, target: Target) -> str:
        account = arm.cognitive_account_id(self.subscription, self.resource_group, target.attributes["account"] or "")
        return f"{account}/deployments/{target.name}"

    def observe(self, resource: ArmResource | None, last_known: dict[str, Any]) -> Observed | None:
        if resource is None or resource.type != arm.ACCOUNT_DEPLOYMENTS:
            return None
        props = resource.properties
        attributes = {**last_known, "account": arm.last_segment(resource.parent_id or ""), "sku": dict(props["sku"]),
                      "rai_policy": props.get("raiPolicyName")}
        outputs = {"id": resource.id, "model": props["model"]["name"], "model_version": props["model"]["version"],
                   "provisioning_state": resource.provisioning_state, "served": False}
        return Observed(resource.id, attributes, outputs)

    def read(self, target: Target) -> Observed | None:
        return self.observe(self.cloud.get(target.backend_id or self.identify(target)), target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self.cloud.get(backend_id), {})

    def _apply(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        model = (self.backend.handler("FineTuneJob").foundry.model_of(a["account"], a["foundry_project"], a["run"])
                 if a.get("run") else None)
        if model is None:
            raise BackendError("ModelNotReady", f"FineTuneJob.{a['job']} has no fine-tuned model yet",
                               hint="apply the job first and let it finish (a plan orders this for you)")
        account = arm.cognitive_account_id(self.subscription, self.resource_group, a["account"])
        resource = self.cloud.put_account_deployment(account, target.name, {
            "sku": dict(a["sku"]), "model": {"format": "OpenAI", "name": model, "version": "1"},
            "raiPolicyName": a.get("rai_policy")})
        progress(f"recorded deployment of {model} ({a['sku']['name']}); the local backend does not serve "
                 "Foundry deployments")
        observed = self.observe(resource, a)
        assert observed is not None
        return observed

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._apply(target, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._apply(target, progress)

    def delete(self, target: Target, progress: Progress) -> None:
        self.cloud.delete_account_deployment(target.backend_id or self.identify(target))
