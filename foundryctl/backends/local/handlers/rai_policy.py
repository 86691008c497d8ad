"""RaiPolicy on the local backend: a content-filter policy kept under its Foundry account in
the control plane, with Azure's PUT semantics (create or replace; the account must exist) and
its place in the account (deleting the account deletes it). A changed policy reaches the
servers of the deployments that name it at once, as on Azure."""

from __future__ import annotations

from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.backends.local.handlers.foundry_deployment import refilter_deployments
from foundryctl.kinds.rai_policy import arm_filters, manifest_filters


class RaiPolicyHandler(LocalHandler):
    kind = "RaiPolicy"

    def identify(self, target: Target) -> str:
        account = arm.cognitive_account_id(self.subscription, self.resource_group, target.attributes["account"])
        return f"{account}/raiPolicies/{target.name}"

    def observe(self, resource: ArmResource | None) -> Observed | None:
        if resource is None or resource.type != arm.RAI_POLICIES:
            return None
        props = resource.properties
        attributes = {"account": arm.last_segment(resource.parent_id or ""), "base_policy": props["basePolicyName"],
                      "mode": props["mode"],
                      "content_filters": sorted(manifest_filters(props["contentFilters"]),
                                                key=lambda f: (f["category"], f["source"]))}
        return Observed(resource.id, attributes, {"id": resource.id, "type": props["type"]})

    def read(self, target: Target) -> Observed | None:
        return self.observe(self.cloud.get(target.backend_id or self.identify(target)))

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self.cloud.get(backend_id))

    def _apply(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        account = arm.cognitive_account_id(self.subscription, self.resource_group, a["account"])
        resource = self.cloud.put_rai_policy(account, target.name, {
            "basePolicyName": a["base_policy"], "mode": a["mode"],
            "contentFilters": arm_filters(a["content_filters"])})
        refilter_deployments(self.cloud, resource, progress)
        observed = self.observe(resource)
        assert observed is not None
        return observed

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._apply(target, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._apply(target, progress)

    def delete(self, target: Target, progress: Progress) -> None:
        self.cloud.delete_rai_policy(target.backend_id or self.identify(target))
