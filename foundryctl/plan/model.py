"""The plan as plain data: per-resource changes, drift, state repairs. Nothing here decides.

A Plan is rendered (text, JSON), saved, and applied as it is; applying never re-decides.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from foundryctl.errors import Diagnostic
from foundryctl.sensitive import NO_SECRETS, Secrets, redact_paths

if TYPE_CHECKING:
    from foundryctl.cost.model import CostEstimate
    from foundryctl.policy.model import PolicyResult

FORMAT_VERSION = 1
# State's address of an old object a create-before-destroy replace has not deleted yet:
# `ADDRESS#deposed`, then `ADDRESS#deposed-2`, ... when a replace starts while one is left.
DEPOSED = "#deposed"


def current_address(address: str) -> str:
    """The manifest address a (possibly deposed) state address belongs to."""
    return address.partition(DEPOSED)[0]


def is_deposed(address: str) -> bool:
    return DEPOSED in address


class Action(str, Enum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


class Mode(str, Enum):
    NORMAL = "normal"
    DESTROY = "destroy"
    REFRESH_ONLY = "refresh-only"


@dataclass
class AttributeChange:
    path: tuple  # ("tags", "env")
    before: Any
    after: Any
    # "add", "remove" or "change", from before to after
    kind: str = "change"
    forces_replacement: bool = False

    @property
    def dotted(self) -> str:
        return ".".join(str(p) for p in self.path)

    def to_dict(self) -> dict[str, Any]:
        return {"path": list(self.path), "before": self.before, "after": self.after,
                "change": self.kind, "forces_replacement": self.forces_replacement}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributeChange:
        return cls(tuple(data["path"]), data["before"], data["after"], data["change"],
                   data["forces_replacement"])


@dataclass
class ResourceChange:
    address: str
    kind: str
    name: str
    action: Action
    before: dict[str, Any] | None  # actual attributes after refresh
    after: dict[str, Any] | None  # desired attributes
    attribute_changes: list[AttributeChange] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    backend_id: str | None = None  # the existing object's id, when there is one
    dependencies: list[str] = field(default_factory=list)
    # What the existing object depended on when it was applied: its deletion is ordered by
    # these (its new dependencies order only the creation).
    prior_dependencies: list[str] = field(default_factory=list)
    protect: bool = False
    create_before_destroy: bool = False
    state_only: bool = False  # only foundryctl's own settings change; no backend call
    # Promotion gates the change waits on ({evaluation, status, conditions, values, baselines}).
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def actions(self) -> list[str]:
        """Terraform's spelling: a replace is two actions, in the order they run."""
        if self.action is Action.REPLACE:
            return ["create", "delete"] if self.create_before_destroy else ["delete", "create"]
        return [self.action.value]

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "kind": self.kind, "name": self.name,
                "action": self.action.value, "before": self.before, "after": self.after,
                "attribute_changes": [c.to_dict() for c in self.attribute_changes],
                "reasons": self.reasons, "backend_id": self.backend_id,
                "dependencies": self.dependencies, "prior_dependencies": self.prior_dependencies,
                "protect": self.protect,
                "create_before_destroy": self.create_before_destroy, "state_only": self.state_only,
                **({"gates": self.gates} if self.gates else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceChange:
        return cls(
            address=data["address"], kind=data["kind"], name=data["name"],
            action=Action(data["action"]), before=data["before"], after=data["after"],
            attribute_changes=[AttributeChange.from_dict(c) for c in data["attribute_changes"]],
            reasons=data["reasons"], backend_id=data["backend_id"], dependencies=data["dependencies"],
            prior_dependencies=data.get("prior_dependencies", []), protect=data["protect"], create_before_destroy=data["create_before_destroy"],
            state_only=data["state_only"], gates=data.get("gates") or [])


@dataclass
class Drift:
    """A change made outside foundryctl since the last apply ("changed outside foundryctl")."""

    address: str
    kind: str
    action: Action  # UPDATE (attributes differ) or DELETE (the object is gone)
    before: dict[str, Any]  # as recorded in state
    after: dict[str, Any] | None  # as observed now
    attribute_changes: list[AttributeChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "kind": self.kind, "action": self.action.value,
                "before": self.before, "after": self.after,
                "attribute_changes": [c.to_dict() for c in self.attribute_changes]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Drift:
        return cls(data["address"], data["kind"], Action(data["action"]), data["before"], data["after"],
                   [AttributeChange.from_dict(c) for c in data["attribute_changes"]])


@dataclass
class StateRepair:
    """Bring state in line with what refresh saw, before any change runs.

    `observed` None means the object is gone: forget the record. Otherwise record it as
    ready with what was observed (drift, or an interrupted create that did happen).
    """

    address: str
    kind: str
    name: str
    reason: str
    observed_id: str | None = None
    attributes: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    dependencies: list[str] = field(default_factory=list)
    protect: bool = False

    @property
    def forget(self) -> bool:
        return self.attributes is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StateRepair:
        return cls(**data)


@dataclass(frozen=True)
class Move:
    """A resource whose address changed while the object stayed the same: only state moves."""

    from_address: str
    to_address: str

    def to_dict(self) -> dict[str, str]:
        return {"from": self.from_address, "to": self.to_address}


@dataclass
class Plan:
    mode: Mode
    changes: list[ResourceChange]
    drift: list[Drift]
    repairs: list[StateRepair]
    lineage: str
    serial: int
    backend: dict[str, str]
    manifest_fingerprint: str
    manifest_source: dict[str, Any]  # how to load the same manifest again (path, vars, var files)
    targets: list[str] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    created_at: str = ""
    foundryctl_version: str = ""
    cost: CostEstimate | None = None  # set by Stack.plan (foundryctl.cost)
    policy_results: list[PolicyResult] = field(default_factory=list)  # foundryctl.policy
    # The manifest's sensitive values: never rendered, saved or written to state in clear.
    sensitive: Secrets = field(default=NO_SECRETS, repr=False)

    @property
    def pending(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def summary(self) -> tuple[int, int, int]:
        """(to add, to change, to destroy), a replace counting as one add and one destroy."""
        add = change = destroy = 0
        for c in self.changes:
            if c.action is Action.CREATE:
                add += 1
            elif c.action is Action.UPDATE:
                change += 1
            elif c.action is Action.DELETE:
                destroy += 1
            elif c.action is Action.REPLACE:
                add += 1
                destroy += 1
        return add, change, destroy

    @property
    def has_changes(self) -> bool:
        """Whether applying would change anything (for --detailed-exitcode)."""
        if self.mode is Mode.REFRESH_ONLY:
            return bool(self.drift or self.repairs)
        return bool(self.pending or self.moves)

    @property
    def needs_apply(self) -> bool:
        return bool(self.pending or self.repairs or self.moves)

    def redacted(self, *, stored: bool = False) -> Plan:
        """A copy with every sensitive value replaced: `(sensitive value)` for people, a
        salted hash (`stored`) for saved plans and state. The copy has nothing left to hide."""
        if not self.sensitive:
            return self
        secrets, plan = self.sensitive, copy.deepcopy(self)
        plan.sensitive = NO_SECRETS
        hidden: dict[str, set[tuple]] = {}  # per address, attribute paths whose new value is sensitive

        def attributes(address: str, value: Any) -> Any:
            found = hidden.setdefault(address, set())
            redacted = secrets.redact(value, stored=stored, found=found)
            return redact_paths(redacted, found, stored=stored)

        def changes(address: str, items: list[AttributeChange]) -> list[AttributeChange]:
            paths = hidden.get(address, set())
            for item in items:
                sensitive = any(item.path[:len(p)] == p or p[:len(item.path)] == item.path for p in paths) \
                    or secrets.redact(item.before) != item.before or secrets.redact(item.after) != item.after
                if sensitive:
                    item.before = redact_paths(item.before, {()}, stored=stored)
                    item.after = redact_paths(item.after, {()}, stored=stored)
            return items

        for c in plan.changes:  # the new values first: they say which old values to hide
            c.after = attributes(c.address, c.after)
            c.before = attributes(c.address, c.before)
            c.attribute_changes = changes(c.address, c.attribute_changes)
            c.reasons = [secrets.redact_text(r) for r in c.reasons]
        for d in plan.drift:
            d.before = attributes(d.address, d.before)
            d.after = attributes(d.address, d.after)
            d.attribute_changes = changes(d.address, d.attribute_changes)
        for r in plan.repairs:
            r.attributes = attributes(r.address, r.attributes)
            r.outputs = secrets.redact(r.outputs, stored=stored)
        names = set(secrets.names)
        source_vars = plan.manifest_source.get("variables") or {}
        if names & set(source_vars):
            plan.manifest_source = {**plan.manifest_source,
                                    "variables": {k: v for k, v in source_vars.items() if k not in names},
                                    "sensitive_variables": sorted(names & set(source_vars))}
        plan.warnings = [replace(w, message=secrets.redact_text(w.message)) for w in plan.warnings]
        for result in plan.policy_results:
            result.violations = [replace(v, message=secrets.redact_text(v.message)) for v in result.violations]
        return plan

    def to_dict(self, *, include_source: bool = True, stored: bool = False) -> dict[str, Any]:
        """The documented JSON form (docs/plan-json.md); saved plans add `manifest_source`.
        Sensitive values are always replaced (see `redacted`)."""
        if self.sensitive:
            return self.redacted(stored=stored).to_dict(include_source=include_source)
        add, change, destroy = self.summary
        out: dict[str, Any] = {
            "format_version": str(FORMAT_VERSION),
            "foundryctl_version": self.foundryctl_version,
            "mode": self.mode.value,
            "created_at": self.created_at,
            "backend": self.backend,
            "state": {"lineage": self.lineage, "serial": self.serial},
            "manifest": {"fingerprint": self.manifest_fingerprint,
                         "files": self.manifest_source.get("files", [])},
            "targets": self.targets,
            "resource_drift": [d.to_dict() for d in self.drift],
            "moved": [m.to_dict() for m in self.moves],
            "resource_changes": [c.to_dict() | {"actions": c.actions} for c in self.changes],
            "state_repairs": [r.to_dict() for r in self.repairs],
            "summary": {"add": add, "change": change, "destroy": destroy},
            "has_changes": self.has_changes,
            "warnings": [w.to_dict() for w in self.warnings],
            "cost": self.cost.to_dict() if self.cost is not None else None,
            "policy_results": [r.to_dict() for r in self.policy_results],
        }
        if include_source:
            out["manifest_source"] = self.manifest_source
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        from foundryctl.cost.model import CostEstimate
        from foundryctl.policy.model import PolicyResult

        return cls(
            mode=Mode(data["mode"]),
            changes=[ResourceChange.from_dict(c) for c in data["resource_changes"]],
            drift=[Drift.from_dict(d) for d in data["resource_drift"]],
            repairs=[StateRepair.from_dict(r) for r in data["state_repairs"]],
            lineage=data["state"]["lineage"], serial=data["state"]["serial"],
            backend=data["backend"], manifest_fingerprint=data["manifest"]["fingerprint"],
            manifest_source=data.get("manifest_source", {}), targets=data.get("targets", []),
            moves=[Move(m["from"], m["to"]) for m in data.get("moved", [])],
            warnings=[], created_at=data.get("created_at", ""),
            foundryctl_version=data.get("foundryctl_version", ""),
            cost=CostEstimate.from_dict(data.get("cost")),
            policy_results=[PolicyResult.from_dict(r) for r in data.get("policy_results", [])])
