"""Open the state a manifest's `state` block names: a SQLite file, or an Azure blob."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from foundryctl.errors import StateError
from foundryctl.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
)
from foundryctl.state.sqlite_store import StateStore


class Store(Protocol):
    """What Stack, the applier and the CLI use; StateStore and BlobStateStore both provide it."""

    @property
    def lineage(self) -> str: ...
    @property
    def serial(self) -> int: ...
    def snapshot(self) -> StateSnapshot: ...
    def get(self, address: str) -> ResourceRecord | None: ...
    def records(self) -> list[ResourceRecord]: ...
    def write(self, puts: Iterable[ResourceRecord] = (), removes: Iterable[str] = ()) -> int: ...
    def put(self, record: ResourceRecord) -> int: ...
    def remove(self, address: str) -> int: ...
    def append_history(self, event: str, details: dict[str, Any]) -> None: ...
    def history(self, limit: int | None = None) -> list[HistoryEntry]: ...
    def current_lock(self) -> LockInfo | None: ...
    def acquire_lock(self, operation: str, *, timeout: float = 0.0,
                     command: str | None = None) -> tuple[LockInfo, LockInfo | None]: ...
    def release_lock(self, lock_id: str) -> None: ...
    def force_unlock(self, lock_id: str) -> LockInfo: ...
    def close(self) -> None: ...


def open_state(config: Any, root: str | os.PathLike, *, path: str | os.PathLike | None = None,
               env: Mapping[str, str] | None = None) -> Store:
    """The store for a `state` block (a StateConfig, or the model of its `type`).

    `path` (the CLI's --state) always means a SQLite file, whatever the block says. `env`
    (default os.environ) is where an azure_blob block's connection string is looked up.
    """
    file = sqlite_path(config, root, path=path)
    if file is not None:
        return StateStore(file)
    config = getattr(config, "root", config)  # StateConfig wraps the model of its type
    if config.type == "azure_blob":
        try:
            from foundryctl.state.blob_store import (
                BlobStateStore,  # the Azure SDK, only now
            )
        except ImportError:
            raise StateError("state type azure_blob needs the Azure Storage SDK",
                             hint="pip install 'foundryctl[blob]'") from None
        return BlobStateStore.open(config, env)
    raise StateError(f"unknown state type {config.type!r}")


def sqlite_path(config: Any, root: str | os.PathLike, *, path: str | os.PathLike | None = None) -> Path | None:
    """The SQLite file a `state` block (or --state) names; None for a remote state."""
    if path is not None:
        return Path(path)
    config = getattr(config, "root", config)
    if config.type == "sqlite":
        file = Path(config.path).expanduser()
        return file if file.is_absolute() else Path(root) / file
    return None
