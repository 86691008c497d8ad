"""Refresh + diff -> Plan. The only place where actions are decided."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from foundryctl import __version__
from foundryctl.backends.base import FieldError, Observed, Target
from foundryctl.errors import Diagnostic, PlanError
from foundryctl.graph import Graph
from foundryctl.kinds import KINDS
from foundryctl.kinds.gates import gate_notes
from foundryctl.plan.diff import diff_attributes
from foundryctl.plan.model import (
    Action,
    Drift,
    Mode,
    Move,
    Plan,
    ResourceChange,
    StateRepair,
    current_address,
    is_deposed,
)
from foundryctl.plan.soft_deleted import SoftDeleted, shown
from foundryctl.state.records import ResourceRecord, StateSnapshot, Status
from foundryctl.state.sqlite_store import now_iso
from foundryctl.suggest import did_you_mean

if TYPE_CHECKING:
    from foundryctl.backends.base import Backend
    from foundryctl.manifest import Manifest, ResourceDecl


@dataclass
class PlanOptions:
    mode: Mode = Mode.NORMAL
    targets: list[str] = field(default_factory=list)
    refresh: bool = True


def make_plan(manifest: Manifest, state: StateSnapshot, backend: Backend, options: PlanOptions,
              manifest_source: dict[str, Any] | None = None,
              held_names: Callable[[], Mapping[str, SoftDeleted]] | None = None) -> Plan:
    """The plan. `held_names` gives the names foundryctl soft-deleted that the backend still
    holds (plan/soft_deleted.py), so creating one again is flagged before apply; it is called
    only when the plan creates something (it reads the state's whole history)."""
    return _Planner(manifest, state, backend, options, held_names or dict).plan(manifest_source or {})


class _Planner:
    def __init__(self, manifest: Manifest, state: StateSnapshot, backend: Backend, options: PlanOptions,
                 held_names: Callable[[], Mapping[str, SoftDeleted]]):
        self.manifest = manifest
        self._read_held_names = held_names
        self.state = state
        self.backend = backend
        self.options = options
        self.desired = manifest.resources
        self.records = state.records
        self.warnings: list[Diagnostic] = list(manifest.warnings)

    # -- scope ---------------------------------------------------------------------------

    @cached_property
    def graph(self) -> Graph:
        """The manifest's graph plus recorded dependencies of resources that left it."""
        graph = Graph()
        for node in self.manifest.graph.nodes:
            graph.add_node(node)
        for node, dep in self.manifest.graph.edges():
            graph.add_edge(node, dep)
        for address, record in self.records.items():
            graph.add_node(address)
            if address not in self.desired:
                for dep in record.dependencies:
                    graph.add_edge(address, dep)
        # An old object deposed by an unfinished replace may still be used by what depends on
        # its address (a deployment still serving the old model): those go before it.
        for address in self.records:
            if is_deposed(address):
                for node, dep in list(graph.edges()):
                    if dep == current_address(address) and node != address:
                        graph.add_edge(node, address)
        return graph

    def _scope(self) -> set[str]:
        everything = set(self.desired) | set(self.records)
        targets = self.options.targets
        if not targets:
            return everything
        unknown = [t for t in targets if t not in everything]
        if unknown:
            raise PlanError("unknown target " + ", ".join(
                f"{t}{did_you_mean(t, everything)}" for t in unknown),
                hint="targets are addresses Kind.name from the manifest or from state")
        if self.options.mode is Mode.DESTROY:
            return self.graph.closure(targets, reverse=True)  # what depends on a target goes first
        return self.graph.closure(targets)  # a target needs its dependencies

    # -- refresh -------------------------------------------------------------------------

    def _target(self, address: str) -> Target:
        record = self.records.get(address)
        decl = self.desired.get(address)
        if record is not None:
            return Target(address, record.kind, record.name, record.attributes, record.backend_id)
        assert decl is not None
        return Target(address, decl.kind.name, decl.name, decl.attributes)

    def _refresh(self, scope: set[str]) -> dict[str, Observed | None]:
        for address in scope:
            record = self.records.get(address)
            if record is not None and record.kind not in KINDS:
                raise PlanError(f"{address} in state is of kind {record.kind}, which this version of "
                                "foundryctl does not know", hint="upgrade foundryctl")
        wanted = [a for a in self._ordered(scope)
                  if a in self.records or (self.options.mode is Mode.NORMAL and a in self.desired)]
        if not self.options.refresh:
            return {a: Observed(r.backend_id or "", r.attributes, r.outputs)
                    for a in wanted if (r := self.records.get(a)) is not None and r.status is Status.READY}
        return self.backend.read_many([self._target(a) for a in wanted])

    def _ordered(self, scope: set[str]) -> list[str]:
        order = [a for a in self.manifest.graph.topological_order() if a in scope]
        order += [a for a in self.records if a in scope and a not in self.desired]
        return order

    # -- decisions -----------------------------------------------------------------------

    def plan(self, manifest_source: dict[str, Any]) -> Plan:
        scope = self._scope()
        observed = self._refresh(scope)
        changes: list[ResourceChange] = []
        moves: list[Move] = []
        while self.options.mode is Mode.NORMAL:
            changes, moves = self._changes(scope, observed)
            missing = self._dependents_of_destroyed(changes) - scope
            if not missing:
                break
            # A target that is destroyed or replaced takes what depends on it along.
            self.warnings.append(Diagnostic.warning(
                "the targets are destroyed or replaced, so the plan also covers what depends on "
                f"them: {', '.join(sorted(missing))}", code="target-expanded"))
            missing |= self.graph.closure(missing) - scope
            observed.update(self._refresh(missing))
            scope |= missing
        if self.options.mode is Mode.DESTROY:
            changes = self._destroy(scope, observed)
        drift, repairs = self._reconcile(scope, observed, changes)
        self._check_protected(changes)
        self._check_in_use(changes, observed)
        self._check_conflicts(changes)
        return Plan(
            mode=self.options.mode, changes=changes, drift=drift, repairs=repairs,
            lineage=self.state.lineage, serial=self.state.serial, backend=self.backend.describe(),
            manifest_fingerprint=self.manifest.fingerprint, manifest_source=manifest_source,
            targets=list(self.options.targets), moves=moves, warnings=self.warnings,
            created_at=now_iso(), foundryctl_version=__version__, sensitive=self.manifest.sensitive)

    def _dependents_of_destroyed(self, changes: list[ResourceChange]) -> set[str]:
        if not self.options.targets:
            return set()
        going = [c.address for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
        return self.graph.closure(going, reverse=True) if going else set()

    def _reconcile(self, scope: set[str], observed: dict[str, Observed | None],
                   changes: list[ResourceChange]) -> tuple[list[Drift], list[StateRepair]]:
        """Compare state with what exists: drift to show, repairs to write before changes.

        Unchanged resources whose dependencies changed in the manifest get their recorded
        dependencies rewritten too, so a later destroy orders their deletion correctly.
        """
        drift: list[Drift] = []
        repairs: list[StateRepair] = []
        unchanged = {c.address for c in changes if c.action is Action.NOOP}
        for address in self._ordered(scope):
            record = self.records.get(address)
            if record is None or address not in observed:
                continue
            seen = observed[address]
            if record.status is Status.READY:
                if seen is None:
                    drift.append(Drift(address, record.kind, Action.DELETE, record.attributes, None))
                    repairs.append(self._repair(record, None, "deleted outside foundryctl"))
                    continue
                kind = KINDS[record.kind]
                differences = diff_attributes(record.attributes, seen.attributes, managed_only=False)
                progressed = [d for d in differences if d.path and d.path[0] in kind.progress_attributes]
                differences = [d for d in differences if d not in progressed]
                dependencies = self.manifest.graph.dependencies(address) \
                    if address in unchanged else record.dependencies
                if differences:
                    drift.append(Drift(address, record.kind, Action.UPDATE, record.attributes,
                                       seen.attributes, differences))
                    repairs.append(self._repair(record, seen, "changed outside foundryctl", dependencies))
                elif dependencies != record.dependencies:
                    repairs.append(self._repair(record, seen, "dependencies changed", dependencies))
                elif progressed:  # a job that moved on by itself (Queued -> Running): not drift
                    repairs.append(self._repair(record, seen, "progressed", dependencies))
                continue
            # An intent left by an apply that was interrupted: what does exist decides.
            verb = record.status.value
            if seen is None:
                reason = f"interrupted while {verb}; it does not exist"
            else:
                reason = f"interrupted while {verb}; it exists and is tracked again"
            repairs.append(self._repair(record, seen, reason))
            self.warnings.append(Diagnostic.warning(
                f"the last apply was interrupted while {verb} this resource; "
                f"{'it exists' if seen else 'it does not exist'} and the plan accounts for that",
                address=address, code="interrupted"))
        return drift, repairs

    @staticmethod
    def _repair(record: ResourceRecord, seen: Observed | None, reason: str,
                dependencies: list[str] | None = None) -> StateRepair:
        if seen is None:
            return StateRepair(record.address, record.kind, record.name, reason)
        return StateRepair(record.address, record.kind, record.name, reason, seen.id, seen.attributes,
                           seen.outputs, record.dependencies if dependencies is None else dependencies,
                           record.protect)

    def _changes(self, scope: set[str], observed: dict[str, Observed | None]
                 ) -> tuple[list[ResourceChange], list[Move]]:
        planned: dict[str, ResourceChange] = {}
        errors: list[Diagnostic] = []
        # Objects of records that left the manifest, by id: a new address that finds one of
        # them (an adopting kind renamed in the manifest) is a move, not a create and a delete.
        leaving = {seen.id.lower(): address for address in self.records
                   if address in scope and address not in self.desired
                   and (seen := observed.get(address)) is not None}
        moves: list[Move] = []
        for address in self.manifest.graph.topological_order():
            if address not in scope:
                continue
            decl = self.desired[address]
            seen = observed.get(address)
            record = self.records.get(address)
            if record is None and seen is not None and seen.id.lower() in leaving:
                moved_from = leaving.pop(seen.id.lower())
                moves.append(Move(moved_from, address))
                record = self.records[moved_from]
            planned[address] = self._desired_change(decl, seen, record, planned, errors, observed)
        if errors:
            raise PlanError(f"{len(errors)} resource(s) cannot be planned", diagnostics=errors)
        for address in leaving.values():
            reason = (f"the old object of an unfinished replace of {current_address(address)}: deleted once "
                      "what uses it has moved to the new one" if is_deposed(address)
                      else "not in the manifest any more")
            planned[address] = self._delete_change(self.records[address], observed[address], reason)
        for address, change in planned.items():
            decl = self.desired.get(address)
            if decl is not None and change.action is not Action.NOOP:
                change.reasons += decl.kind.follow_notes(decl, planned)
        return list(planned.values()), moves

    def _desired_change(self, decl: ResourceDecl, seen: Observed | None, record: ResourceRecord | None,
                        planned: dict[str, ResourceChange], errors: list[Diagnostic],
                        observed: dict[str, Observed | None]) -> ResourceChange:
        kind = decl.kind
        address = decl.address
        after = kind.resolve(decl, decl.attributes, observed, errors)
        common = dict(address=address, kind=kind.name, name=decl.name, after=after,
                      dependencies=self.manifest.graph.dependencies(address),
                      prior_dependencies=record.dependencies if record else [],
                      protect=decl.spec.protect, create_before_destroy=kind.create_before_destroy)
        if seen is None:
            reasons = []
            if record is not None and record.status is Status.READY:
                reasons.append("deleted outside foundryctl")
            reasons += kind.describe_changes(None, after, decl)
            reasons += self._create_notes(decl, errors)
            reasons += self._held_name_notes(decl)
            gates = kind.plan_gates(decl, None, after, observed)
            return ResourceChange(action=Action.CREATE, before=None, reasons=reasons + gate_notes(gates),
                                  gates=gates, **common)
        if record is None:
            if not kind.adopts_existing:
                errors.append(Diagnostic.error(
                    f"{address} already exists in the backend ({seen.id}) but foundryctl does not "
                    "manage it", decl.position, address, code="already-exists",
                    hint=f"adopt it with: foundryctl import {address} {seen.id}"))
            return ResourceChange(action=Action.CREATE, before=None, backend_id=seen.id,
                                  reasons=["already exists; apply adopts it"], **common)

        changes = diff_attributes(seen.attributes, after, force_new=kind.force_new)
        reasons = [f"{c.dotted} forces replacement" for c in changes if c.forces_replacement]
        for ref in decl.references:
            container = planned.get(ref.target)
            if ref.containment and container is not None and container.action is Action.REPLACE:
                reasons.append(f"{ref.target} is replaced and takes this resource with it")
        action = Action.REPLACE if reasons else (Action.UPDATE if changes else Action.NOOP)
        if action is not Action.NOOP:
            reasons += kind.describe_changes(seen.attributes, after, decl)
        if action is Action.REPLACE:
            reasons += self.backend.handler(kind.name).delete_notes(seen)
        state_only = False
        if action is Action.NOOP and record.protect != decl.spec.protect:
            action, state_only = Action.UPDATE, True
            reasons = [f"protect: {str(record.protect).lower()} -> {str(decl.spec.protect).lower()}"]
        gates = kind.plan_gates(decl, seen.attributes, after, observed) if action is not Action.NOOP else []
        return ResourceChange(action=action, before=seen.attributes, attribute_changes=changes,
                              reasons=reasons + gate_notes(gates), backend_id=seen.id, state_only=state_only,
                              gates=gates, **common)

    def _create_notes(self, decl: ResourceDecl, errors: list[Diagnostic]) -> list[str]:
        """The backend's word on creating `decl`; a FieldError becomes an error at its field."""
        target = Target(decl.address, decl.kind.name, decl.name, decl.attributes)
        try:
            return self.backend.handler(decl.kind.name).create_notes(target)
        except FieldError as exc:
            errors.append(Diagnostic.error(exc.message, decl.position_of(exc.path), decl.address,
                                           code=exc.code, hint=exc.hint))
            return []

    @cached_property
    def held_names(self) -> Mapping[str, SoftDeleted]:
        return self._read_held_names()

    def _held_name_notes(self, decl: ResourceDecl) -> list[str]:
        """A create of a name foundryctl soft-deleted and the backend still holds: a note, and
        a warning when the create would fail as declared."""
        if not any(gone.address.partition(".")[0] == decl.kind.name for gone in self.held_names.values()):
            return []
        handler = self.backend.handler(decl.kind.name)
        if handler.lists_soft_deleted:
            return []  # its create_notes asked the backend itself
        target = Target(decl.address, decl.kind.name, decl.name, decl.attributes)
        gone = self.held_names.get(handler.identify(target).lower())
        if gone is None:
            return []
        text, fails = handler.soft_deleted_note(target, shown(gone.deleted_at), shown(gone.until))
        if fails:
            self.warnings.append(Diagnostic.warning(text, decl.position, decl.address, code="name-soft-deleted"))
        return [text]

    def _delete_change(self, record: ResourceRecord, seen: Observed | None, reason: str) -> ResourceChange:
        notes = self.backend.handler(record.kind).delete_notes(seen) if seen and record.kind in KINDS else []
        return ResourceChange(
            address=record.address, kind=record.kind, name=record.name, action=Action.DELETE,
            before=seen.attributes if seen else record.attributes, after=None, reasons=[reason, *notes],
            backend_id=seen.id if seen else record.backend_id, dependencies=record.dependencies,
            prior_dependencies=record.dependencies, protect=record.protect)

    def _destroy(self, scope: set[str], observed: dict[str, Observed | None]) -> list[ResourceChange]:
        order = [a for a in reversed(self.graph.topological_order()) if a in scope]
        return [self._delete_change(self.records[a], observed.get(a), "destroy")
                for a in order if a in self.records and observed.get(a) is not None]

    def _check_in_use(self, changes: list[ResourceChange], observed: dict[str, Observed | None]) -> None:
        """Refuse deleting what something still uses (a model an endpoint serves), unless the
        plan also deletes that user or moves it to something else (its `model` changes)."""
        by_id = {r.backend_id.lower(): a for a, r in self.records.items() if r.backend_id}
        planned = {c.address: c for c in changes}
        # A targeted destroy refuses instead of quietly taking a deployment along with the job.
        chosen = set(self.options.targets) if self.options.mode is Mode.DESTROY and self.options.targets else None

        def moves_away(address: str | None) -> bool:
            change = planned.get(address or "")
            if change is None:
                return False
            if change.action is Action.DELETE:
                return chosen is None or change.address in chosen
            if change.action is Action.REPLACE:
                return True
            return change.action is Action.UPDATE and any(
                c.path and c.path[0] == "model" for c in change.attribute_changes)

        errors = []
        for change in changes:
            if change.action not in (Action.DELETE, Action.REPLACE) or change.kind not in KINDS:
                continue
            seen = observed.get(change.address)
            if seen is None:
                continue
            target = Target(change.address, change.kind, change.name, seen.attributes, seen.id)
            users = [u for u in self.backend.handler(change.kind).users(target, seen)
                     if not moves_away(by_id.get(u.lower()))]
            if not users:
                continue
            named = [by_id.get(u.lower()) or f"{u} (not managed by this state)" for u in users]
            decl = self.desired.get(change.address)
            verb = "destroyed" if change.action is Action.DELETE else "replaced"
            deployments = [n for n in named if n.startswith("Deployment.")]
            errors.append(Diagnostic.error(
                f"{change.address} cannot be {verb}: its model is served by {', '.join(named)}. A model "
                "with an active deployment cannot be deleted until the deployment is gone",
                decl.position if decl else None, change.address, code="in-use",
                hint=(f"destroy the deployment as well (foundryctl destroy --target {deployments[0]}"
                      f" --target {change.address}), or point it at another model first" if deployments else
                      "delete or move those endpoints first") +
                     ("; a deployment with `model: {job: NAME}` follows a replaced job by itself"
                      if change.action is Action.REPLACE else "")))
        if errors:
            raise PlanError(f"{len(errors)} resource(s) are still in use", diagnostics=errors)

    def _check_conflicts(self, changes: list[ResourceChange]) -> None:
        """Refuse creating or changing what the backend would refuse because of an object that
        exists already (a second serverless endpoint of one custom model), unless this plan
        deletes that object or moves it to something else."""
        by_id = {r.backend_id.lower(): a for a, r in self.records.items() if r.backend_id}
        planned = {c.address: c for c in changes}

        def moves_away(address: str | None) -> bool:
            change = planned.get(address or "")
            return change is not None and (change.action in (Action.DELETE, Action.REPLACE) or (
                change.action is Action.UPDATE and any(c.path and c.path[0] == "model"
                                                       for c in change.attribute_changes)))

        errors = []
        for change in changes:
            if change.action not in (Action.CREATE, Action.REPLACE, Action.UPDATE) or change.kind not in KINDS:
                continue
            if change.action is Action.UPDATE and not any(c.path and c.path[0] == "model"
                                                          for c in change.attribute_changes):
                continue
            handler = self.backend.handler(change.kind)
            target = Target(change.address, change.kind, change.name, change.after or {}, change.backend_id)
            own = (change.backend_id or "").lower()
            found = [u for u in handler.conflicts(target)
                     if u.lower() != own and by_id.get(u.lower()) != change.address
                     and not moves_away(by_id.get(u.lower()))]
            if not found:
                continue
            named = [by_id.get(u.lower()) or f"{u} (not managed by this state)" for u in found]
            decl = self.desired.get(change.address)
            errors.append(Diagnostic.error(
                f"{change.address} conflicts with {', '.join(named)}: {handler.conflict_rule}",
                decl.position_of(("model",)) if decl else None, change.address, code="conflict",
                hint="delete that one first, or serve the callers from it"))
        if errors:
            raise PlanError(f"{len(errors)} resource(s) conflict with what exists", diagnostics=errors)

    def _check_protected(self, changes: list[ResourceChange]) -> None:
        errors = []
        for change in changes:
            if change.action not in (Action.DELETE, Action.REPLACE):
                continue
            record = self.records.get(change.address)
            if not (change.protect or (record is not None and record.protect)):
                continue
            decl = self.desired.get(change.address)
            why = "; ".join(change.reasons) or change.action.value
            errors.append(Diagnostic.error(
                f"{change.address} has protect: true, and this plan would "
                f"{'destroy' if change.action is Action.DELETE else 'replace'} it ({why})",
                decl.position_of(("protect",)) if decl else None, change.address, code="protected",
                hint="revert the change, or first apply `protect: false` for it on its own"))
        if errors:
            raise PlanError(f"the plan would destroy {len(errors)} protected resource(s)", diagnostics=errors)
