"""Names foundryctl soft-deleted and the backend still holds: read back from the state's history.

Azure keeps a deleted hub or project (14 days) and a deleted Foundry account (48 hours) soft-
deleted, and refuses a new one of the same name until then. azure-ai-ml has no call that lists
soft-deleted workspaces, but foundryctl knows the ones it deleted itself: apply appends a
`soft-deleted` event for each, and a later completed create of that address ends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from foundryctl.state.records import HistoryEntry

EVENT = "soft-deleted"


@dataclass(frozen=True)
class SoftDeleted:
    address: str
    backend_id: str
    deleted_at: str  # ISO 8601, UTC
    until: str


def held_names(history: Iterable[HistoryEntry], now: datetime | None = None) -> dict[str, SoftDeleted]:
    """Backend id (lower case: ARM ids are case-insensitive) -> the soft delete still holding it."""
    now = now or datetime.now(timezone.utc)
    held: dict[str, SoftDeleted] = {}
    for entry in history:
        details = entry.details or {}
        if entry.event == EVENT and details.get("backend_id") and details.get("until"):
            gone = SoftDeleted(str(details.get("address", "")), str(details["backend_id"]),
                               str(details.get("deleted_at") or entry.at), str(details["until"]))
            held[gone.backend_id.lower()] = gone
        elif entry.event == "apply-finished":
            created = {str(op).removesuffix(" (create)") for op in details.get("completed") or ()
                       if str(op).endswith(" (create)")}
            for key in [k for k, gone in held.items() if gone.address in created]:
                del held[key]
    return {key: gone for key, gone in held.items() if _parse(gone.until) > now}


def _parse(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def shown(text: str) -> str:
    """An ISO time as the plan shows it: `2026-12-04 19:30 UTC`."""
    moment = _parse(text)
    return text if moment.year == 1 else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
