"""foundryctl's state: what it manages, at which serial, who holds the lock, what happened."""

from foundryctl.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    Status,
)
from foundryctl.state.sqlite_store import StateStore

__all__ = ["HistoryEntry", "LockInfo", "ResourceRecord", "StateSnapshot", "StateStore", "Status"]
