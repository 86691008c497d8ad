"""Backends: where resources really live. Each implements one handler per kind.

This module stays import-light: the manifest loader reads `BACKEND_CONFIGS` to validate
the `backend` block, and `open_backend` imports a backend's implementation on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from foundryctl.backends.azure.config import AzureBackendConfig
from foundryctl.backends.local.config import LocalBackendConfig

if TYPE_CHECKING:
    from foundryctl.backends.base import Backend

BACKEND_CONFIGS: dict[str, type[BaseModel]] = {"local": LocalBackendConfig, "azure": AzureBackendConfig}
_IMPLEMENTATIONS = {"local": "foundryctl.backends.local:LocalBackend",
                    "azure": "foundryctl.backends.azure.backend:AzureBackend"}


def open_backend(config: BaseModel, root: Path) -> Backend:
    """Instantiate the backend a manifest's `backend` block selects."""
    module_name, _, class_name = _IMPLEMENTATIONS[config.type].partition(":")  # type: ignore[attr-defined]
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(config, root)
