"""The Azure backend: the same manifest against real Azure AI Foundry, through
azure-mgmt-resource, azure-mgmt-authorization, azure-ai-ml and azure-identity.

Refresh reads every resource in parallel (ARM throttling is waited out by the clients'
retry policy); writes go through the SDKs' long-running-operation pollers.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from foundryctl.backends.azure.clients import AzureClients
from foundryctl.backends.azure.config import AzureBackendConfig
from foundryctl.backends.azure.credentials import default_credential
from foundryctl.backends.base import Backend, Handler, Observed, Target
from foundryctl.errors import BackendError

SDKS = ("azure.ai.ml", "azure.mgmt.authorization", "azure.mgmt.resource", "azure.identity")


class AzureBackend(Backend):
    type = "azure"

    def __init__(self, config: AzureBackendConfig, root: Path, *, credential: Any = None):
        try:
            import azure.ai.ml
            import azure.mgmt.authorization
            import azure.mgmt.resource  # noqa: F401
        except ImportError as exc:
            raise BackendError("MissingDependency", f"the azure backend needs the Azure SDKs ({exc.name} "
                               "is not installed)", hint="pip install 'foundryctl[azure]'") from None
        self.config = config
        self.root = root  # the manifest's directory: data files resolve from here
        self.credential = credential or default_credential(config.tenant_id)
        self.clients = AzureClients(config, self.credential)
        self._handlers: dict[str, Handler] = {}
        self._handlers_lock = threading.Lock()

    def handler(self, kind: str) -> Handler:
        from foundryctl.backends.azure.handlers import HANDLERS

        with self._handlers_lock:  # refresh asks from several threads
            if kind not in self._handlers:
                if kind not in HANDLERS:
                    raise BackendError("UnsupportedKind", f"the azure backend has no handler for {kind}")
                module_name, _, class_name = HANDLERS[kind].partition(":")
                module = importlib.import_module(f"foundryctl.backends.azure.handlers.{module_name}")
                self._handlers[kind] = getattr(module, class_name)(self)
            return self._handlers[kind]

    def read_many(self, targets: list[Target]) -> dict[str, Observed | None]:
        """Every target read at once, up to `max_parallel_reads` in flight."""
        if len(targets) <= 1:
            return super().read_many(targets)
        workers = min(self.config.max_parallel_reads, len(targets))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="foundryctl-read") as pool:
            results = list(pool.map(lambda t: self.handler(t.kind).read(t), targets))
        return {t.address: observed for t, observed in zip(targets, results)}

    def describe(self) -> dict[str, str]:
        return {"type": "azure", "subscription_id": self.config.subscription_id,
                "resource_group": self.config.resource_group, "location": self.config.location}

    def close(self) -> None:
        self.clients.close()
        close = getattr(self.credential, "close", None)
        if close is not None:
            close()

