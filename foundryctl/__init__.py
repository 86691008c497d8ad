"""foundryctl: declarative plan/apply for Azure AI Foundry fine-tuning.

The Python API is what the CLI is built on::

    from foundryctl import Stack

    stack = Stack.load("manifests/quickstart.yaml")
    plan = stack.plan()
    stack.apply(plan)

Heavy modules are imported on first use so that ``import foundryctl`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Stack": "foundryctl.stack",
    "load_manifest": "foundryctl.manifest",
    "Manifest": "foundryctl.manifest",
    "Plan": "foundryctl.plan",
    "Diagnostic": "foundryctl.errors",
    "FoundryctlError": "foundryctl.errors",
    "ManifestError": "foundryctl.errors",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from foundryctl.errors import Diagnostic, FoundryctlError, ManifestError
    from foundryctl.manifest import Manifest, load_manifest
    from foundryctl.plan import Plan
    from foundryctl.stack import Stack


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'foundryctl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
