"""Carry a plan out: state repairs first, then the operations, each result recorded at once.

Crash safety: before the backend is asked to create, update or delete anything, the intent
is committed to state (status creating/updating/deleting, with the object's id). If the
process dies at any point, the next refresh reads exactly those objects back and the plan
accounts for what did or did not happen; nothing is created without state knowing its id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from foundryctl.apply.operations import Operation, operations
from foundryctl.apply.walker import walk
from foundryctl.backends.base import Backend, Observed, Progress, Target
from foundryctl.kinds import KINDS
from foundryctl.plan.model import DEPOSED, Action, Plan, ResourceChange
from foundryctl.plan.soft_deleted import EVENT as SOFT_DELETED
from foundryctl.sensitive import RedactingStore, Secrets
from foundryctl.state.records import ResourceRecord, Status
from foundryctl.state.sqlite_store import StateStore


@dataclass(frozen=True)
class ApplyEvent:
    kind: str  # "start", "progress", "done", "error"
    address: str
    verb: str
    message: str = ""
    elapsed: float = 0.0
    backend_id: str | None = None
    pending: str | None = None  # "done" of an object not ready for its dependents yet
    completed: float | None = None  # progress events of measurable work (training steps)
    total: float | None = None


@dataclass
class ApplyResult:
    added: int = 0
    changed: int = 0
    destroyed: int = 0
    failures: list[tuple[str, str, BaseException]] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    # Operations left for a later apply because what they need is still on its way
    # (`--no-wait`, or Ctrl-C while waiting for training): (operation, what it waits for).
    deferred: list[tuple[str, str]] = field(default_factory=list)
    waiting_on: list[tuple[str, str]] = field(default_factory=list)  # (address, why it is not ready)
    interrupted: bool = False
    repaired: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted


EventSink = Callable[[ApplyEvent], None]


def apply_plan(plan: Plan, state: StateStore, backend: Backend, *, parallelism: int = 10,
               on_event: EventSink | None = None,
               on_interrupt: Callable[[list[str]], None] | None = None) -> ApplyResult:
    """Carry out `plan`. The first Ctrl-C starts no new operation and stops waiting for
    training (the job runs on, detached; a later apply picks it up); `on_interrupt` is told
    which operations are still running. A second Ctrl-C raises `ApplyAborted` at once."""
    emit = on_event or (lambda event: None)
    if plan.sensitive:  # state keeps sensitive values as salted hashes; progress never shows them
        state = RedactingStore(state, plan.sensitive)  # type: ignore[assignment]
        emit = _redacting(emit, plan.sensitive)
    changes = {c.address: c for c in plan.changes}
    result = ApplyResult()
    state.append_history("apply-started", {
        "mode": plan.mode.value, "targets": plan.targets, "plan_serial": plan.serial,
        "summary": dict(zip(("add", "change", "destroy"), plan.summary))})

    if plan.repairs:
        state.write(
            puts=[ResourceRecord(r.address, r.kind, r.name, r.observed_id, Status.READY,
                                 r.attributes or {}, r.outputs or {}, r.dependencies, r.protect)
                  for r in plan.repairs if not r.forget],
            removes=[r.address for r in plan.repairs if r.forget])
        result.repaired = len(plan.repairs)
    for move in plan.moves:
        record = state.get(move.from_address)
        if record is not None:
            record.address = move.to_address
            record.name = move.to_address.partition(".")[2]
            state.write(puts=[record], removes=[move.from_address])

    def run(op: Operation) -> str | None:
        change = changes[op.address]
        started = time.monotonic()
        emit(ApplyEvent("start", op.address, op.verb))
        progress = Progress(lambda message, completed=None, total=None: emit(ApplyEvent(
            "progress", op.address, op.verb, message, time.monotonic() - started,
            completed=completed, total=total)))
        try:
            observed = _OPERATIONS[op.verb](change, state, backend, progress)
        except BaseException as exc:
            emit(ApplyEvent("error", op.address, op.verb, str(exc), time.monotonic() - started))
            raise
        pending = _pending(change, observed) if op.verb in ("create", "update") else None
        emit(ApplyEvent("done", op.address, op.verb, elapsed=time.monotonic() - started,
                        backend_id=observed.id if observed else change.backend_id, pending=pending))
        return pending

    ops, waits = operations(plan.changes)
    walked = walk(ops, waits, run, parallelism, on_interrupt=on_interrupt)
    done: dict[str, set[str]] = {}
    for op in walked.completed:
        done.setdefault(op.address, set()).add(op.verb)
    for change in plan.pending:  # each half of a replace counts on its own
        verbs = done.get(change.address, set())
        if "create" in verbs:
            result.added += 1
        if "delete" in verbs:
            result.destroyed += 1
        if verbs & {"update", "state"}:
            result.changed += 1
    result.failures = [(op.address, op.verb, error) for op, error in walked.failed]
    result.not_started = [str(op) for op in walked.not_started]
    result.deferred = [(str(op), reason) for op, reason in walked.deferred]
    result.waiting_on = [(op.address, reason) for op, reason in walked.pending]
    result.interrupted = walked.interrupted
    state.append_history("apply-finished", {
        "outcome": "succeeded" if result.ok else ("interrupted" if result.interrupted else "failed"),
        "added": result.added, "changed": result.changed, "destroyed": result.destroyed,
        "completed": [str(op) for op in walked.completed],
        "failed": [{"operation": str(op), "error": str(error)} for op, error in walked.failed],
        "not_started": result.not_started, "deferred": [op for op, _ in result.deferred]})
    return result


def _redacting(emit: EventSink, secrets: Secrets) -> EventSink:
    return lambda event: emit(replace(event, message=secrets.redact_text(event.message)))


def _record(change: ResourceChange, status: Status, backend_id: str | None, attributes: dict,
            outputs: dict | None = None, address: str | None = None) -> ResourceRecord:
    return ResourceRecord(address or change.address, change.kind, change.name, backend_id, status,
                          attributes, outputs or {}, change.dependencies, change.protect)


def _target(change: ResourceChange, attributes: dict | None, backend_id: str | None) -> Target:
    return Target(change.address, change.kind, change.name, attributes or {}, backend_id)


def _pending(change: ResourceChange, observed: Observed | None) -> str | None:
    kind = KINDS.get(change.kind)
    return kind.pending(observed.attributes, observed.outputs) if kind and observed else None


def _admit(change: ResourceChange, state: StateStore) -> None:
    """The kind's last word before the backend is asked (a deployment's promotion gate), judged
    on its dependencies' outputs as this apply left them."""
    kind = KINDS.get(change.kind)
    if kind is not None and change.after is not None:
        kind.admit(change.before, change.after, lambda address: (r.outputs if (r := state.get(address)) else None))


def _create(change: ResourceChange, state: StateStore, backend: Backend, progress: Progress) -> Observed:
    _admit(change, state)
    handler = backend.handler(change.kind)
    target = _target(change, change.after, None)
    intent = _record(change, Status.CREATING, handler.identify(target), change.after or {})
    if change.action is Action.REPLACE and change.create_before_destroy:
        old = state.get(change.address)
        deposed = [] if old is None else [ResourceRecord(
            _free_deposed_address(state, change.address), old.kind, old.name, old.backend_id, old.status,
            old.attributes, old.outputs, old.dependencies, old.protect)]
        state.write(puts=deposed + [intent])  # the old object stays known while the new one is made
    else:
        state.put(intent)
    observed = handler.create(target, progress)
    state.put(_record(change, Status.READY, observed.id, observed.attributes, observed.outputs))
    return observed


def _free_deposed_address(state: StateStore, address: str) -> str:
    """`ADDRESS#deposed`, or the next free `#deposed-N` when an earlier replace left one."""
    taken = {r.address for r in state.records()}
    candidates = (address + DEPOSED + (f"-{n}" if n > 1 else "") for n in range(1, len(taken) + 2))
    return next(c for c in candidates if c not in taken)


def _update(change: ResourceChange, state: StateStore, backend: Backend, progress: Progress) -> Observed:
    _admit(change, state)
    handler = backend.handler(change.kind)
    state.put(_record(change, Status.UPDATING, change.backend_id, change.before or {}))
    observed = handler.update(_target(change, change.after, change.backend_id), change.before or {},
                              progress)
    state.put(_record(change, Status.READY, observed.id, observed.attributes, observed.outputs))
    return observed


def _state_only(change: ResourceChange, state: StateStore, backend: Backend, progress: Progress) -> Observed | None:
    record = state.get(change.address)
    if record is not None:
        record.protect = change.protect
        record.dependencies = change.dependencies
        state.put(record)
        return Observed(record.backend_id or "", record.attributes, record.outputs)
    return None


def _delete(change: ResourceChange, state: StateStore, backend: Backend, progress: Progress) -> Observed | None:
    handler = backend.handler(change.kind)
    address = change.address
    if change.action is Action.REPLACE and change.create_before_destroy:
        # The record this replace's create deposed: the one holding the old object's id.
        address = next((r.address for r in state.records()
                        if r.address.startswith(address + DEPOSED) and r.backend_id == change.backend_id),
                       address + DEPOSED)
    state.put(_record(change, Status.DELETING, change.backend_id, change.before or {}, address=address))
    target = _target(change, change.before, change.backend_id)
    handler.delete(target, progress)
    retention = handler.soft_delete_retention(target)
    if retention is not None and change.backend_id:
        # The name stays taken: the next plan that creates it again says so (plan/soft_deleted.py).
        now = datetime.now(timezone.utc)
        state.append_history(SOFT_DELETED, {"address": change.address, "backend_id": change.backend_id,
                                             "deleted_at": now.isoformat(timespec="seconds"),
                                             "until": (now + retention).isoformat(timespec="seconds")})
    state.remove(address)
    return None


_OPERATIONS = {"create": _create, "update": _update, "state": _state_only, "delete": _delete}
