"""RaiPolicy on Azure: `Microsoft.CognitiveServices/accounts/raiPolicies` at api-version
2025-06-01 (vendored in tests/specs: RaiPolicies_CreateOrUpdate), through the generic
resources client like the account itself.

- read: GET {id}; 404 is absent (so is a missing account).
- create / update: PUT {id} with {"properties": {basePolicyName, mode, contentFilters}} (Azure
  answers synchronously, 200 or 201); an existing policy of that name is made to match.
- delete: DELETE {id}. Azure refuses to delete a policy a deployment names; its error is kept.
"""

from __future__ import annotations

from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.azure.handlers.foundry import _CognitiveHandler
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.kinds.rai_policy import arm_filters, manifest_filters


class RaiPolicyHandler(_CognitiveHandler):
    kind = "RaiPolicy"

    def identify(self, target: Target) -> str:
        account = arm.cognitive_account_id(self.subscription, self.resource_group, target.attributes["account"])
        return f"{account}/raiPolicies/{target.name}"

    def observe(self, resource: Any) -> Observed | None:
        if resource is None:
            return None
        props = resource.properties or {}
        account = resource.id.split("/accounts/", 1)[1].split("/", 1)[0]
        attributes = {"account": account, "base_policy": props.get("basePolicyName"),
                      "mode": props.get("mode") or "Default",
                      "content_filters": sorted(manifest_filters(props.get("contentFilters") or []),
                                                key=lambda f: (f["category"], f["source"]))}
        outputs = {"id": resource.id, "type": props.get("type")}
        return Observed(resource.id, attributes, outputs)

    def read(self, target: Target) -> Observed | None:
        return self.observe(self._get(target.backend_id or self.identify(target)))

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self._get(backend_id))

    def _apply(self, target: Target) -> Observed:
        from azure.mgmt.resource.resources.models import GenericResource

        a = target.attributes
        body = GenericResource(properties={"basePolicyName": a["base_policy"], "mode": a["mode"],
                                           "contentFilters": arm_filters(a["content_filters"])})
        resource_id = target.backend_id or self.identify(target)
        self._put(resource_id, body, f"writing content-filter policy {target.name}")
        observed = self.read(target)
        assert observed is not None
        return observed

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._apply(target)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._apply(target)

    def delete(self, target: Target, progress: Progress) -> None:
        self._delete(target.backend_id or self.identify(target), f"deleting content-filter policy {target.name}")
