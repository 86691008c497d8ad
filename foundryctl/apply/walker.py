"""Run a DAG of operations on a thread pool, as parallel as the edges allow.

On the first failure no new operation starts; those already running finish and are
recorded. Ctrl-C does the same (a second Ctrl-C is not special-cased: the process ends,
and crash safety in state covers it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Node = TypeVar("Node", bound=Hashable)


@dataclass
class WalkResult(Generic[Node]):
    completed: list[Node] = field(default_factory=list)
    failed: list[tuple[Node, BaseException]] = field(default_factory=list)
    not_started: list[Node] = field(default_factory=list)
    interrupted: bool = False


def walk(nodes: Sequence[Node], waits: dict[Node, set[Node]], run: Callable[[Node], None],
         parallelism: int = 10) -> WalkResult[Node]:
    result: WalkResult[Node] = WalkResult()
    remaining = {n: set(waits.get(n, ())) for n in nodes}
    dependents: dict[Node, list[Node]] = {n: [] for n in nodes}
    for node, before in remaining.items():
        for other in before:
            dependents[other].append(node)
    ready = deque(n for n in nodes if not remaining[n])
    running: dict[Future, Node] = {}
    stopping = False
    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="apply") as pool:
        while ready or running:
            while ready and not stopping and len(running) < parallelism:
                node = ready.popleft()
                running[pool.submit(run, node)] = node
            if not running:
                break
            try:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                stopping = result.interrupted = True
                continue
            for future in done:
                node = running.pop(future)
                error = future.exception()
                if error is not None:
                    result.failed.append((node, error))
                    stopping = True
                    continue
                result.completed.append(node)
                for dependent in dependents[node]:
                    remaining[dependent].discard(node)
                    if not remaining[dependent]:
                        ready.append(dependent)
    finished = set(result.completed) | {n for n, _ in result.failed}
    result.not_started = [n for n in nodes if n not in finished]
    return result
