"""A plan's changes as backend operations with their ordering edges.

create/update of a resource wait for its dependencies' create/update; the delete of an
object waits for the deletes of everything that depended on it when it was applied (its
prior dependencies, not the manifest's new ones); a replace is a delete then
a create (or, for create-before-destroy kinds, a create, the dependents' updates, then the
delete of the old object). An old object an earlier apply deposed and did not delete is
ordered the same way, whichever later apply deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundryctl.plan.model import Action, ResourceChange, current_address, is_deposed


@dataclass(frozen=True)
class Operation:
    address: str
    verb: str  # "create", "update", "delete" or "state" (foundryctl-only change)

    def __str__(self) -> str:
        return f"{self.address} ({self.verb})"


def operations(changes: list[ResourceChange]) -> tuple[list[Operation], dict[Operation, set[Operation]]]:
    """The operations in a stable order and, for each, the operations it must wait for."""
    ops: list[Operation] = []  # one per (address, verb); a replace contributes two
    creates: dict[str, Operation] = {}  # create or update: the resource exists afterwards
    deletes: dict[str, Operation] = {}
    for change in changes:
        a = change.address
        if change.action is Action.CREATE:
            creates[a] = Operation(a, "create")
        elif change.action is Action.UPDATE:
            creates[a] = Operation(a, "state" if change.state_only else "update")
        elif change.action is Action.DELETE:
            deletes[a] = Operation(a, "delete")
        elif change.action is Action.REPLACE:
            creates[a] = Operation(a, "create")
            deletes[a] = Operation(a, "delete")
    for change in changes:
        ops.extend(op for table in (deletes, creates) if (op := table.get(change.address)))

    # Every delete of an object that is, or was, at an address: the current one and those
    # deposed by earlier replaces (`ADDRESS#deposed...`), which other resources never name.
    deletes_at: dict[str, list[Operation]] = {}
    for address, op in deletes.items():
        deletes_at.setdefault(current_address(address), []).append(op)

    waits: dict[Operation, set[Operation]] = {op: set() for op in ops}
    for change in changes:
        a = change.address
        if a in creates:
            for dep in change.dependencies:
                if dep in creates:
                    waits[creates[a]].add(creates[dep])
        if a in deletes:
            for dep in change.prior_dependencies:
                for delete in deletes_at.get(dep, ()):
                    waits[delete].add(deletes[a])  # dependents go first
        if change.action is Action.REPLACE:
            if change.create_before_destroy:
                waits[deletes[a]].add(creates[a])
            else:
                waits[creates[a]].add(deletes[a])
    # What is deleted for good goes only after the updates of what used to depend on it (a
    # deployment moving off a job's model before the job and its model are deleted).
    removed = {c.address for c in changes if c.action is Action.DELETE and not is_deposed(c.address)}
    for change in changes:
        if change.address in creates and change.action is not Action.CREATE:
            for dep in change.prior_dependencies:
                if dep in removed:
                    waits[deletes[dep]].add(creates[change.address])
    # An old object of a create-before-destroy replace, of this apply or left by an earlier
    # one that stopped (Ctrl-C, a kill, --no-wait), goes only after the object now at its
    # address exists and everything that pointed at it has moved to that one.
    replaced_first = {c.address for c in changes if c.action is Action.REPLACE and c.create_before_destroy}
    old = {base: [d for d in ops_ if d.address != base or base in replaced_first]
           for base, ops_ in deletes_at.items()}
    for change in changes:
        a = change.address
        if a not in creates:
            continue
        for dep in {*change.dependencies, *change.prior_dependencies}:
            for delete in old.get(dep, ()):
                waits[delete].add(creates[a])
        for delete in old.get(a, ()):
            if delete.address != a:
                waits[delete].add(creates[a])
    return ops, waits

