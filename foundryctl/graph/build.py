"""The desired graph: reference fields, `depends_on`, and the edges kinds imply."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from foundryctl.errors import Diagnostic
from foundryctl.graph.dag import CycleError, Graph
from foundryctl.kinds import parse_address
from foundryctl.kinds.role_assignment import RESOURCE_SCOPES
from foundryctl.suggest import did_you_mean

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest, ResourceDecl


def build_graph(manifest: Manifest, invalid: Collection[str] = ()) -> tuple[Graph, list[Diagnostic]]:
    """Edges for every resource; dangling references and cycles come back as errors.

    `invalid` names resources that are declared but failed validation: references to them
    are not reported again as dangling.
    """
    graph = Graph()
    diagnostics: list[Diagnostic] = []
    resources = manifest.resources
    names_by_kind: dict[str, list[str]] = {}
    for address in [*resources, *invalid]:
        kind, _, name = address.partition(".")
        names_by_kind.setdefault(kind, []).append(name)
    role_assignments = [r for r in resources.values() if r.kind.name == "RoleAssignment"]

    for address, decl in resources.items():
        graph.add_node(address)
        for ref in decl.references:
            if ref.target in resources:
                graph.add_edge(address, ref.target)
                continue
            if ref.target in invalid:
                continue
            kind, _, name = ref.target.partition(".")
            diagnostics.append(Diagnostic.error(
                f"{'.'.join(map(str, ref.path))} refers to "
                f"{kind} {name!r}, which is not in the manifest"
                f"{did_you_mean(name, names_by_kind.get(kind, []))}",
                decl.position_of(ref.path), address, code="dangling-reference"))
        for i, target in enumerate(decl.spec.depends_on):
            if target in resources:
                graph.add_edge(address, target)
                continue
            if target in invalid:
                continue
            parsed = parse_address(target)
            candidates = names_by_kind.get(parsed[0], []) if parsed else []
            hint = did_you_mean(parsed[1], candidates) if parsed else ""
            diagnostics.append(Diagnostic.error(
                f"depends_on {target!r} is not a resource in the manifest{hint}",
                decl.position_of(("depends_on", i)), address, code="dangling-reference"))
        for target in decl.kind.implicit_dependencies(decl, manifest):
            if target != address:
                graph.add_edge(address, target)
        if decl.kind.needs_role:
            for assignment in _covering_assignments(decl, manifest, role_assignments):
                graph.add_edge(address, assignment.address)

    try:
        graph.topological_order()
    except CycleError as cycle:
        first = resources[cycle.cycle[0]]
        where = ", ".join(f"{a} at {resources[a].position}" for a in cycle.cycle[:-1])
        diagnostics.append(Diagnostic.error(
            f"dependency cycle: {' -> '.join(cycle.cycle)}", first.position, first.address,
            code="cycle", hint=f"break one of these edges ({where})"))
    return graph, diagnostics


def _covering_assignments(decl: ResourceDecl, manifest: Manifest,
                          assignments: list[ResourceDecl]) -> list[ResourceDecl]:
    chain = set(decl.kind.scope_chain(decl, manifest))
    covering = []
    for assignment in assignments:
        scope = assignment.spec.scope  # type: ignore[attr-defined]
        named = scope.resource()
        if named is None or f"{RESOURCE_SCOPES[named[0]]}.{named[1]}" in chain:
            covering.append(assignment)
    return covering
