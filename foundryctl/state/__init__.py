"""foundryctl's state: what it manages, at which serial, who holds the lock, what happened."""

from foundryctl.state.factory import Store, open_state
from foundryctl.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    Status,
)
from foundryctl.state.sqlite_store import StateStore

# BlobStateStore (foundryctl.state.blob_store) is not imported here: it loads the Azure SDK.
__all__ = ["HistoryEntry", "LockInfo", "ResourceRecord", "StateSnapshot", "StateStore", "Status",
           "Store", "open_state"]
