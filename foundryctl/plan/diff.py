"""Attribute diffs between what exists and what is wanted (deepdiff does the walking)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from foundryctl.sensitive import reveal

_REPORT_KINDS = {
    "values_changed": "change", "type_changes": "change",
    "dictionary_item_added": "add", "iterable_item_added": "add",
    "dictionary_item_removed": "remove", "iterable_item_removed": "remove",
}


def diff_attributes(before: dict[str, Any], after: dict[str, Any], *,
                    force_new: Collection[str] = (), managed_only: bool = True) -> list:
    """Changes from `before` to `after`, ordered by path.

    With `managed_only`, an attribute that is None in `after` is left to the backend
    (never diffed) and attributes absent from `after` are ignored: backend-computed values
    live in outputs and never show up here.
    """
    from foundryctl.plan.model import AttributeChange

    if managed_only:
        after = {k: v for k, v in after.items() if v is not None}
        before = {k: before.get(k) for k in after}
    if before == after:  # the common case, without deepdiff's cost
        return []
    before = reveal(before, after)  # a sensitive value in state is a hash: equal is no change
    if before == after:
        return []
    from deepdiff import DeepDiff
    from deepdiff.helper import notpresent

    changes = []
    for report, levels in DeepDiff(before, after, view="tree", verbose_level=2).items():
        kind = _REPORT_KINDS.get(report, "change")
        for level in levels:
            path = tuple(level.path(output_format="list"))
            old = None if level.t1 is notpresent else level.t1
            new = None if level.t2 is notpresent else level.t2
            changes.append(AttributeChange(path, old, new, kind,
                                           bool(path) and path[0] in force_new))
    changes.sort(key=lambda c: [str(p) for p in c.path])
    return changes
