"""What every Azure handler shares: the clients, the subscription and resource group, and
ARM ids built the way Azure spells them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foundryctl.backends.base import Handler

if TYPE_CHECKING:
    from foundryctl.backends.azure import AzureBackend

WORKSPACES = "Microsoft.MachineLearningServices/workspaces"


class AzureHandler(Handler):
    def __init__(self, backend: AzureBackend):
        self.backend = backend
        self.config = backend.config
        self.clients = backend.clients
        self.subscription = backend.config.subscription_id
        self.resource_group = backend.config.resource_group

    @property
    def resource_group_id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"

    def workspace_id(self, name: str) -> str:
        return f"{self.resource_group_id}/providers/{WORKSPACES}/{name}"


def unmodelled(last_known: dict[str, Any], observed: dict[str, Any]) -> dict[str, Any]:
    """Observed attributes: Azure's values for what Azure models, the last applied value
    for settings it has no field for (they cannot drift on Azure's side)."""
    return {**last_known, **observed}
