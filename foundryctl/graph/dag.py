"""A small directed acyclic graph of resource addresses.

An edge `a -> b` means "a depends on b": b is created before a and destroyed after it.
Order among independent nodes follows insertion order, so output is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable


class CycleError(ValueError):
    def __init__(self, cycle: list[str]):
        super().__init__(" -> ".join(cycle))
        self.cycle = cycle


class Graph:
    def __init__(self) -> None:
        self._deps: dict[str, list[str]] = {}
        self._dependents: dict[str, list[str]] = {}
        self._order: list[str] | None = None

    def add_node(self, node: str) -> None:
        if node not in self._deps:
            self._deps[node] = []
            self._dependents[node] = []
            self._order = None

    def add_edge(self, node: str, dependency: str) -> None:
        self.add_node(node)
        self.add_node(dependency)
        if dependency not in self._deps[node]:
            self._deps[node].append(dependency)
            self._dependents[dependency].append(node)
            self._order = None

    def __contains__(self, node: object) -> bool:
        return node in self._deps

    def __len__(self) -> int:
        return len(self._deps)

    @property
    def nodes(self) -> list[str]:
        return list(self._deps)

    def edges(self) -> list[tuple[str, str]]:
        return [(n, d) for n, deps in self._deps.items() for d in deps]

    def dependencies(self, node: str) -> list[str]:
        return list(self._deps.get(node, ()))

    def dependents(self, node: str) -> list[str]:
        return list(self._dependents.get(node, ()))

    def closure(self, roots: Iterable[str], *, reverse: bool = False) -> set[str]:
        """Roots plus everything they depend on (or, reversed, everything depending on them)."""
        links = self._dependents if reverse else self._deps
        seen: set[str] = set()
        stack = [r for r in roots if r in links]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(links[node])
        return seen

    def topological_order(self) -> list[str]:
        """Dependencies first. Raises CycleError naming one cycle."""
        if self._order is not None:
            return list(self._order)
        remaining = {n: len(deps) for n, deps in self._deps.items()}
        ready = [n for n, count in remaining.items() if count == 0]
        order: list[str] = []
        while ready:
            next_ready: list[str] = []
            for node in ready:
                order.append(node)
                for dependent in self._dependents[node]:
                    remaining[dependent] -= 1
                    if remaining[dependent] == 0:
                        next_ready.append(dependent)
            ready = next_ready
        if len(order) != len(self._deps):
            raise CycleError(self.find_cycle())
        self._order = order
        return list(order)

    def find_cycle(self) -> list[str]:
        """One cycle as a path that starts and ends on the same node ([] if none)."""
        WHITE, GREY, BLACK = 0, 1, 2
        colour = dict.fromkeys(self._deps, WHITE)
        for start in self._deps:
            if colour[start] != WHITE:
                continue
            path: list[str] = []
            stack: list[tuple[str, int]] = [(start, 0)]
            while stack:
                node, index = stack.pop()
                if index == 0:
                    colour[node] = GREY
                    path.append(node)
                deps = self._deps[node]
                if index < len(deps):
                    stack.append((node, index + 1))
                    nxt = deps[index]
                    if colour[nxt] == GREY:
                        return path[path.index(nxt):] + [nxt]
                    if colour[nxt] == WHITE:
                        stack.append((nxt, 0))
                else:
                    colour[node] = BLACK
                    path.pop()
        return []
