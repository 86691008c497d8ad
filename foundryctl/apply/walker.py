"""Run a DAG of operations on a thread pool, as parallel as the edges allow.

On the first failure no new operation starts; those already running finish and are
recorded. The first Ctrl-C does the same (and `on_interrupt` hears which are running, so
they can stop waiting); a second one raises `ApplyAborted` at once, without waiting for
them: state holds their intents, and the next plan reconciles what they did.

An operation may finish "pending": it did its part, but what it made is not ready for
what depends on it (a training job started with --no-wait). Its dependents are deferred to
a later apply instead of failing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Node = TypeVar("Node", bound=Hashable)


class ApplyAborted(KeyboardInterrupt):
    """A second Ctrl-C: stop now, leaving the running operations to crash safety."""

    def __init__(self, running: list[str]):
        super().__init__("interrupted twice")
        self.running = running


@dataclass
class WalkResult(Generic[Node]):
    completed: list[Node] = field(default_factory=list)
    failed: list[tuple[Node, BaseException]] = field(default_factory=list)
    not_started: list[Node] = field(default_factory=list)
    pending: list[tuple[Node, str]] = field(default_factory=list)  # completed, not ready yet
    deferred: list[tuple[Node, str]] = field(default_factory=list)  # waits for a pending node
    interrupted: bool = False


def walk(nodes: Sequence[Node], waits: dict[Node, set[Node]], run: Callable[[Node], str | None],
         parallelism: int = 10, on_interrupt: Callable[[list[str]], None] | None = None) -> WalkResult[Node]:
    """`run(node)` returns None when done, or why what it made is not ready yet (pending)."""
    result: WalkResult[Node] = WalkResult()
    remaining = {n: set(waits.get(n, ())) for n in nodes}
    dependents: dict[Node, list[Node]] = {n: [] for n in nodes}
    for node, before in remaining.items():
        for other in before:
            dependents[other].append(node)
    ready = deque(n for n in nodes if not remaining[n])
    running: dict[Future, Node] = {}
    stopping = False
    # Not a `with` block: leaving it joins the workers, and a second Ctrl-C must not wait.
    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="apply")
    try:
        while ready or running:
            while ready and not stopping and len(running) < parallelism:
                node = ready.popleft()
                running[pool.submit(run, node)] = node
            if not running:
                break
            try:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                if result.interrupted:
                    raise ApplyAborted([str(n) for n in running.values()]) from None
                stopping = result.interrupted = True
                if on_interrupt is not None:
                    on_interrupt([str(n) for n in running.values()])
                continue
            for future in done:
                node = running.pop(future)
                error = future.exception()
                if error is not None:
                    result.failed.append((node, error))
                    stopping = True
                    continue
                result.completed.append(node)
                pending = future.result()
                if pending:
                    result.pending.append((node, pending))
                    continue  # its dependents stay waiting: deferred below
                for dependent in dependents[node]:
                    remaining[dependent].discard(node)
                    if not remaining[dependent]:
                        ready.append(dependent)
    except ApplyAborted:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    finished = set(result.completed) | {n for n, _ in result.failed}
    deferred = _downstream(result.pending, dependents, finished)
    result.deferred = [(n, deferred[n]) for n in nodes if n in deferred]
    result.not_started = [n for n in nodes if n not in finished and n not in deferred]
    return result


def _downstream(pending: list[tuple[Node, str]], dependents: dict[Node, list[Node]],
                finished: set[Node]) -> dict[Node, str]:
    """Every unfinished node that (transitively) waits for a pending one, and which one."""
    out: dict[Node, str] = {}
    queue = deque((dependent, str(node)) for node, _ in pending for dependent in dependents[node])
    while queue:
        node, cause = queue.popleft()
        if node in out or node in finished:
            continue
        out[node] = cause
        queue.extend((dependent, cause) for dependent in dependents[node])
    return out
