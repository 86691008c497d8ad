"""The local backend: the embedded default. An emulated Azure control plane (LocalCloud)
that keeps Azure's rules, driven through one handler per kind."""

from __future__ import annotations

import os
from pathlib import Path

from foundryctl.backends.base import Backend, Handler
from foundryctl.backends.local.cloud import AuthorizationFailed, LocalCloud
from foundryctl.backends.local.config import LocalBackendConfig
from foundryctl.errors import BackendError
from foundryctl.state.lock import current_user


class LocalBackend(Backend):
    type = "local"

    def __init__(self, config: LocalBackendConfig, root: Path):
        self.config = config
        self.root = root  # the manifest's directory: data files resolve from here
        self.cloud = LocalCloud(root / config.path, registration_delay=config.registration_delay,
                                api_latency=config.api_latency)
        self.subscription_id = config.subscription_id or self.cloud.default_subscription_id
        self.resource_group = config.resource_group
        # The acting principal: whose roles data-plane operations are checked against.
        self.principal = config.principal or os.environ.get("FOUNDRYCTL_PRINCIPAL") or current_user()
        from foundryctl.backends.local.handlers import HANDLERS

        self._handlers = {kind: cls(self) for kind, cls in HANDLERS.items()}

    def handler(self, kind: str) -> Handler:
        try:
            return self._handlers[kind]
        except KeyError:
            raise BackendError("UnsupportedKind", f"the local backend has no handler for {kind}") from None

    def describe(self) -> dict[str, str]:
        return {"type": "local", "path": str(self.cloud.directory.resolve()),
                "subscription_id": self.subscription_id, "resource_group": self.resource_group,
                "principal": self.principal}

    def authorize(self, action: str, scope: str, *, data_action: bool = False) -> str:
        """Check the acting principal's roles for a data-plane operation (see LocalCloud.check_access)."""
        return self.cloud.check_access(self.principal, action, scope, data_action=data_action)

    def close(self) -> None:
        self.cloud.close()


__all__ = ["AuthorizationFailed", "LocalBackend", "LocalCloud"]
