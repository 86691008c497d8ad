"""The Azure SDK clients one backend uses, made on first use and shared by its handlers.

Every client sends through azure-core's pipeline with a retry policy that waits out ARM
throttling: a 429 (or 5xx) is retried after the server's Retry-After, with backoff
otherwise, so parallel refreshes slow down instead of failing.
"""

from __future__ import annotations

import logging
import sys
import threading
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    from foundryctl.backends.azure.config import AzureBackendConfig

# azure-core RetryPolicy settings (Retry-After is honoured by default).
RETRY = {"retry_total": 10, "retry_backoff_factor": 0.8, "retry_backoff_max": 60}
USER_AGENT = "foundryctl"
# azure-ai-ml reports progress itself, to stderr handlers it installs on import: "Total time :
# 1m 2s", "experimental class" warnings, "Proceeding with no tenant id appended to studio URL".
# foundryctl prints its own progress, so these loggers keep only warnings (the experimental
# notes not even those), and the ARM deployment executor, which sets its own level, too.
_SDK_LOGGERS = {"azure.ai.ml": logging.WARNING,
                "azure.ai.ml._arm_deployments.arm_deployment_executor": logging.WARNING,
                "azure.ai.ml._utils._experimental": logging.ERROR}


@cache
def quiet_sdk_output() -> None:
    """Keep azure-ai-ml's own progress lines off the user's terminal (once per process)."""
    import azure.ai.ml._arm_deployments.arm_deployment_executor  # noqa: F401 - sets its level on import
    from azure.ai.ml._artifacts import _blob_storage_helper

    for name, level in _SDK_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    # Every upload ends with an unconditional print(Fore.RESET + "\n", file=sys.stderr): a
    # colour code and an empty line in the middle of apply's output.
    _blob_storage_helper.print = _print_except_colour_resets  # type: ignore[attr-defined]


def _print_except_colour_resets(*args: Any, **kwargs: Any) -> None:
    if kwargs.get("file") is sys.stderr and all(str(a).strip() in ("", "\x1b[39m") for a in args):
        return
    print(*args, **kwargs)


class AzureClients:
    def __init__(self, config: AzureBackendConfig, credential: Any):
        self.config = config
        self.credential = credential
        self._ml: dict[str | None, MLClient] = {}
        self._resources: ResourceManagementClient | None = None
        self._authorization: AuthorizationManagementClient | None = None
        self._lock = threading.Lock()

    @property
    def resources(self) -> ResourceManagementClient:
        with self._lock:  # refresh threads ask at once; one client serves them all
            if self._resources is None:
                from azure.mgmt.resource.resources import ResourceManagementClient

                self._resources = ResourceManagementClient(
                    self.credential, self.config.subscription_id, base_url=self.config.arm_endpoint,
                    user_agent=USER_AGENT, **RETRY)
            return self._resources

    @property
    def authorization(self) -> AuthorizationManagementClient:
        with self._lock:
            if self._authorization is None:
                from azure.mgmt.authorization import AuthorizationManagementClient

                self._authorization = AuthorizationManagementClient(
                    self.credential, self.config.subscription_id, base_url=self.config.arm_endpoint,
                    user_agent=USER_AGENT, **RETRY)
            return self._authorization

    def ml(self, workspace: str | None = None) -> MLClient:
        """An MLClient for the resource group (hubs, projects) or one workspace (data, jobs,
        endpoints). Telemetry is off: foundryctl sends nothing but the calls it makes."""
        with self._lock:
            client = self._ml.get(workspace)
            if client is None:
                from azure.ai.ml import MLClient

                quiet_sdk_output()
                client = MLClient(self.credential, self.config.subscription_id, self.config.resource_group,
                                  workspace_name=workspace, enable_telemetry=False, show_progress=False,
                                  user_agent=USER_AGENT, **RETRY)
                self._ml[workspace] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in (self._resources, self._authorization):
                if client is not None:
                    client.close()
            self._resources = self._authorization = None
            self._ml.clear()  # MLClient has no close; its sessions go with it
