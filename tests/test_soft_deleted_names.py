"""Which soft-deleted names the plan warns about: read from the state's history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from foundryctl.plan.soft_deleted import EVENT, held_names, shown
from foundryctl.state.records import HistoryEntry

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
HUB_ID = "/subscriptions/S/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/hub-a"


def entry(n: int, event: str, details: dict) -> HistoryEntry:
    return HistoryEntry(n, n, (NOW - timedelta(days=1)).isoformat(), event, "u", "h", 1, "apply", details)


def deleted(n: int, address: str = "Hub.hub-a", backend_id: str = HUB_ID, days: float = 14) -> HistoryEntry:
    at = NOW - timedelta(days=1)
    return entry(n, EVENT, {"address": address, "backend_id": backend_id, "deleted_at": at.isoformat(),
                            "until": (at + timedelta(days=days)).isoformat()})


def finished(n: int, *completed: str) -> HistoryEntry:
    return entry(n, "apply-finished", {"outcome": "succeeded", "completed": list(completed)})


def test_a_soft_delete_holds_the_name_by_its_backend_id_in_any_case() -> None:
    held = held_names([deleted(1)], NOW)
    assert list(held) == [HUB_ID.lower()]
    assert held[HUB_ID.lower()].address == "Hub.hub-a"


def test_the_name_is_free_once_the_retention_has_passed() -> None:
    assert held_names([deleted(1, days=0.5)], NOW) == {}


def test_a_later_completed_create_of_the_address_frees_it() -> None:
    assert held_names([deleted(1), finished(2, "Hub.hub-a (create)")], NOW) == {}
    # A failed create (not completed) or another address's create leaves it held.
    assert held_names([deleted(1), finished(2, "Hub.hub-b (create)", "Hub.hub-a (update)")], NOW)
    # A delete after the create holds it again.
    assert held_names([deleted(1), finished(2, "Hub.hub-a (create)"), deleted(3)], NOW)


def test_malformed_history_entries_are_skipped() -> None:
    bad = [entry(1, EVENT, {"address": "Hub.x"}), entry(2, EVENT, {"backend_id": "b", "until": "not a time"}),
           entry(3, "apply-finished", {"completed": None})]
    assert held_names(bad, NOW) == {}


def test_times_are_shown_in_utc_minutes() -> None:
    assert shown("2026-12-04T19:30:12+01:00") == "2026-12-04 18:30 UTC"
    assert shown("garbage") == "garbage"
