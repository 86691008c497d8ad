"""State records: plain data, nothing here talks to a database or a cloud."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    READY = "ready"
    # Intents, written before the backend is asked to act: after a crash the next plan
    # knows exactly which objects may exist and reads them back.
    CREATING = "creating"
    UPDATING = "updating"
    DELETING = "deleting"


@dataclass
class ResourceRecord:
    address: str
    kind: str
    name: str
    backend_id: str | None
    status: Status
    attributes: dict[str, Any]  # last applied (or, for an intent, intended) attributes
    outputs: dict[str, Any] = field(default_factory=dict)  # backend-computed values
    dependencies: list[str] = field(default_factory=list)
    protect: bool = False
    updated_serial: int = 0
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address, "kind": self.kind, "name": self.name,
            "backend_id": self.backend_id, "status": self.status.value,
            "attributes": self.attributes, "outputs": self.outputs,
            "dependencies": self.dependencies, "protect": self.protect,
            "updated_serial": self.updated_serial, "updated_at": self.updated_at,
        }


@dataclass
class StateSnapshot:
    """A consistent view of state at one serial."""

    lineage: str
    serial: int
    records: dict[str, ResourceRecord]


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    serial: int
    at: str
    event: str
    user: str
    host: str
    pid: int
    command: str
    details: dict[str, Any]


@dataclass(frozen=True)
class LockInfo:
    id: str
    operation: str
    command: str
    user: str
    host: str
    pid: int
    created_at: str
    process_start: str | None = None

    def describe(self) -> str:
        return (f"{self.operation} by {self.user}@{self.host} (pid {self.pid}) since "
                f"{self.created_at}: {self.command}")
