"""What every Azure handler shares: the clients, the subscription and resource group, and
ARM ids built the way Azure spells them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from foundryctl.backends import arm
from foundryctl.backends.base import Handler
from foundryctl.errors import BackendError

if TYPE_CHECKING:
    from foundryctl.backends.azure.backend import AzureBackend


class AzureHandler(Handler):
    def __init__(self, backend: AzureBackend):
        self.backend = backend
        self.config = backend.config
        self.clients = backend.clients
        self.subscription = backend.config.subscription_id
        self.resource_group = backend.config.resource_group

    @property
    def resource_group_id(self) -> str:
        return arm.resource_group_id(self.subscription, self.resource_group)

    def workspace_id(self, name: str) -> str:
        return arm.workspace_id(self.subscription, self.resource_group, name)


def parse_child_id(resource_id: str, child_type: str, what: str) -> tuple[str, str]:
    """(project, name) of a data asset, job or endpoint id; a clear error for anything else."""
    found = arm.workspace_child(resource_id, child_type)
    if found is None:
        raise BackendError("InvalidId", f"{resource_id!r} is not {what} id",
                           hint="ids look like /subscriptions/S/resourceGroups/G/providers/"
                                f"Microsoft.MachineLearningServices/workspaces/PROJECT/{child_type}/NAME")
    return found


def json_tag(value: Any) -> str:
    """A value foundryctl keeps in an Azure tag (attributes Azure has no field for), compact
    and in a stable order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def read_json_tag(tag: str | None) -> Any:
    """What `json_tag` wrote; None when the tag is missing or was edited into something else
    (tags can be edited in the portal: a refresh must not crash on them)."""
    try:
        return json.loads(tag) if tag else None
    except ValueError:
        return None


def unmodelled(last_known: dict[str, Any], observed: dict[str, Any]) -> dict[str, Any]:
    """Observed attributes: Azure's values for what Azure models, the last applied value
    for settings it has no field for (they cannot drift on Azure's side)."""
    return {**last_known, **observed}
