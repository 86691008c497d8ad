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

import signal
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
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
    interrupts = _Interrupts()
    heard = 0
    try:
        with interrupts.counted():
            while ready or running:
                while ready and not stopping and len(running) < parallelism:
                    node = ready.popleft()
                    running[pool.submit(run, node)] = node
                if not running:
                    break
                try:
                    done, _ = wait(running, timeout=interrupts.poll, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:  # raised by a SIGINT handler that is not ours
                    interrupts.count += 1
                    done = set()
                if interrupts.count > heard:
                    if result.interrupted or interrupts.count - heard > 1:
                        raise ApplyAborted([str(n) for n in running.values()])
                    heard = interrupts.count
                    stopping = result.interrupted = True
                    if on_interrupt is not None:
                        on_interrupt([str(n) for n in running.values()])
                    continue
                _finish(done, running, result, dependents, remaining, ready)
                stopping = stopping or bool(result.failed)
    except ApplyAborted:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    finished = set(result.completed) | {n for n, _ in result.failed}
    deferred = _downstream(result.pending, dependents, finished)
    result.deferred = [(n, deferred[n]) for n in nodes if n in deferred]
    result.not_started = [n for n in nodes if n not in finished and n not in deferred]
    return result


def _finish(done: set[Future], running: dict[Future, Node], result: WalkResult[Node],
            dependents: dict[Node, list[Node]], remaining: dict[Node, set[Node]], ready: deque[Node]) -> None:
    """Record the finished operations and make ready what waited only for them."""
    for future in done:
        node = running.pop(future)
        error = future.exception()
        if error is not None:
            result.failed.append((node, error))
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


class _Interrupts:
    """Ctrl-C counted by a SIGINT handler while the walk runs on the main thread. Python's own
    KeyboardInterrupt lands wherever the main thread is: outside `wait` (between two
    completions, in an on_interrupt callback) it would skip the orderly stop, and interpreter
    exit would then join every running operation."""

    def __init__(self) -> None:
        self.count = 0
        self.poll: float | None = None  # None: wait for a completion (KeyboardInterrupt wakes it)

    @contextmanager
    def counted(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield  # another thread, or a process that ignores or handles Ctrl-C itself
            return
        previous = signal.signal(signal.SIGINT, self._heard)
        self.poll = 0.1
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _heard(self, signum: int, frame: object) -> None:
        self.count += 1


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
