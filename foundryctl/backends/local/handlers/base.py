"""What every local handler shares: the cloud, the subscription and resource group."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from foundryctl.backends.base import Handler

if TYPE_CHECKING:
    from foundryctl.backends.local import LocalBackend


class LocalHandler(Handler):
    def __init__(self, backend: LocalBackend):
        self.backend = backend
        self.cloud = backend.cloud
        self.subscription = backend.subscription_id
        self.resource_group = backend.resource_group


def log_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a process's log, for an error message ("" when unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
