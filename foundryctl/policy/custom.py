"""Custom rules: Python functions over a read-only view of the plan and the manifest.

    def no_friday_deploys(plan: PlanView, manifest: ManifestView):
        '''Return None (pass), or a message, a Violation, or a list of them.'''

The views are frozen: mappings are read-only, lists are tuples, so a rule cannot change the
plan it judges. See docs/policies.md.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from foundryctl.policy.model import Violation

if TYPE_CHECKING:
    from foundryctl.cost.model import CostEstimate
    from foundryctl.manifest.model import Manifest
    from foundryctl.plan.model import Plan


def freeze(value: Any) -> Any:
    """A read-only deep copy: dicts become mapping proxies, lists tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class AttributeChangeView:
    path: tuple
    before: Any
    after: Any
    change: str  # add, remove or change
    forces_replacement: bool


@dataclass(frozen=True)
class ChangeView:
    """One entry of the plan's resource_changes (docs/plan-json.md), read-only."""

    address: str
    kind: str
    name: str
    action: str  # no-op, create, update, replace, delete
    actions: tuple[str, ...]  # Terraform's spelling: ("delete", "create") for a replace
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    attribute_changes: tuple[AttributeChangeView, ...]
    reasons: tuple[str, ...]
    protect: bool
    backend_id: str | None


@dataclass(frozen=True)
class PlanView:
    mode: str  # normal, destroy, refresh-only
    changes: tuple[ChangeView, ...]  # every resource in scope, no-ops included
    summary: Mapping[str, int]  # add, change, destroy
    cost: Mapping[str, Any] | None  # the cost estimate as in the plan's JSON (`cost`)
    targets: tuple[str, ...]
    backend: Mapping[str, str]

    @property
    def pending(self) -> tuple[ChangeView, ...]:
        """The changes that do something (no no-ops)."""
        return tuple(c for c in self.changes if c.action != "no-op")

    def of_kind(self, kind: str) -> tuple[ChangeView, ...]:
        return tuple(c for c in self.changes if c.kind == kind)

    def change(self, address: str) -> ChangeView | None:
        return next((c for c in self.changes if c.address == address), None)


@dataclass(frozen=True)
class ResourceView:
    address: str
    kind: str
    name: str
    attributes: Mapping[str, Any]  # the desired attributes, as the plan diffs them
    protect: bool
    file: str
    line: int


@dataclass(frozen=True)
class ManifestView:
    resources: Mapping[str, ResourceView]  # by address, in declaration order
    variables: Mapping[str, Any]
    files: tuple[str, ...]
    backend: Mapping[str, Any]

    def of_kind(self, kind: str) -> tuple[ResourceView, ...]:
        return tuple(r for r in self.resources.values() if r.kind == kind)


def plan_view(plan: Plan, cost: CostEstimate | None) -> PlanView:
    add, change, destroy = plan.summary
    changes = tuple(
        ChangeView(c.address, c.kind, c.name, c.action.value, tuple(c.actions), freeze(c.before),
                   freeze(c.after),
                   tuple(AttributeChangeView(tuple(a.path), freeze(a.before), freeze(a.after), a.kind,
                                             a.forces_replacement) for a in c.attribute_changes),
                   tuple(c.reasons), c.protect, c.backend_id)
        for c in plan.changes)
    return PlanView(plan.mode.value, changes, freeze({"add": add, "change": change, "destroy": destroy}),
                    freeze(cost.to_dict()) if cost is not None else None, tuple(plan.targets),
                    freeze(plan.backend))


def manifest_view(manifest: Manifest) -> ManifestView:
    resources = {}
    for address, decl in manifest.resources.items():
        position = decl.position
        resources[address] = ResourceView(address, decl.kind.name, decl.name, freeze(decl.attributes),
                                          decl.spec.protect, position.file, position.line)
    return ManifestView(MappingProxyType(resources), freeze(manifest.variables), tuple(manifest.files),
                        freeze(manifest.backend.model_dump(mode="json")))


# -- loading -----------------------------------------------------------------------------

_LOADED: dict[str, Any] = {}


def is_file_module(module: str) -> bool:
    return module.endswith(".py") or "/" in module or "\\" in module


def check_declared(module: str, function: str, directory: Path) -> str | None:
    """Why the rule cannot be found, or None; without running the module (validate is offline
    and runs no user code: the file is parsed, not imported)."""
    if not is_file_module(module):
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:
            return f"cannot find module {module}: {exc}"
        return None if found is not None else f"no module named {module}"
    path = directory / module
    if not path.is_file():
        return f"no such file: {module} (resolved to {path})"
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError) as exc:
        return f"{module} is not valid Python: {exc}"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return None
        if isinstance(node, ast.AsyncFunctionDef) and node.name == function:
            return f"{function} in {module} is async; a rule is a plain function"
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == function for t in targets):
                return None
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                (a.asname or a.name) == function for a in node.names):
            return None
    return f"{module} defines no function {function}"


def load_function(module: str, function: str, directory: Path) -> Callable[..., Any]:
    """The rule's function; raises ImportError/AttributeError with a message saying why."""
    if is_file_module(module):
        path = (directory / module).resolve()
        loaded = _LOADED.get(str(path))
        if loaded is None:
            name = "foundryctl_policy_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[name] = loaded  # dataclasses and pickling look modules up by name
            try:
                spec.loader.exec_module(loaded)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            _LOADED[str(path)] = loaded
    else:
        loaded = importlib.import_module(module)
    found = getattr(loaded, function, None)
    if not callable(found):
        raise AttributeError(f"{module} defines no function {function}")
    return found


def violations_of(returned: Any) -> list[Violation]:
    """What a rule returned, as violations: None/True/empty pass; False, a string, a
    Violation, a {message, address} mapping or (address, message) pair fail; or a list."""
    if returned is None or returned is True:
        return []
    if returned is False:
        return [Violation("the rule returned False")]
    if isinstance(returned, (str, Violation, Mapping)):
        return [_one(returned)]
    if isinstance(returned, Iterable):
        return [_one(item) for item in returned]
    raise TypeError(f"a rule returns None, a message, a Violation or a list of them, not "
                    f"{type(returned).__name__}")


def _one(item: Any) -> Violation:
    if isinstance(item, Violation):
        return item
    if isinstance(item, str):
        return Violation(item)
    if isinstance(item, Mapping) and "message" in item:
        return Violation(str(item["message"]), item.get("address"))
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, (str, type(None))) for x in item):
        return Violation(str(item[1]), item[0])
    raise TypeError(f"cannot read a violation from {item!r}")
