"""The backend interface: per kind, read / create / update / delete, plus an id for intents.

Handlers are level-triggered and idempotent (a retry after a crash does no harm): create
of something that already exists either adopts it (kinds that say so) or fails with a
clear 'already exists' error, and delete of something gone succeeds.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from foundryctl.errors import BackendError


@dataclass
class Observed:
    """What the backend says an object is: its id, configurable attributes and outputs."""

    id: str
    attributes: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """The object a handler acts on, named the way the manifest names it."""

    address: str
    kind: str
    name: str
    attributes: dict[str, Any]  # desired for create/update; last known for read/delete
    backend_id: str | None = None


class FieldError(BackendError):
    """A backend problem the manifest fixes at one field: `path` inside the resource
    (("principal_type",)) lets the plan point at the file and line."""

    def __init__(self, code: str, message: str, path: tuple = (), *, hint: str | None = None):
        super().__init__(code, message, hint=hint)
        self.path = path


class Progress:
    """How a long operation tells the user it is still alive (the CLI prints these; with
    `completed` and `total` a terminal shows a progress bar)."""

    def __init__(self, report: Callable[..., None] | None = None):
        self._report = report

    def __call__(self, message: str, *, completed: float | None = None, total: float | None = None) -> None:
        if self._report is None:
            return
        if completed is None and total is None:
            self._report(message)  # a reporter may take the message alone
        else:
            self._report(message, completed, total)


class Handler(ABC):
    kind: ClassVar[str]

    @abstractmethod
    def identify(self, target: Target) -> str:
        """The id the object has (or will have) in the backend; recorded before create."""

    @abstractmethod
    def read(self, target: Target) -> Observed | None:
        """The object as it is now, or None when it does not exist."""

    def read_many(self, targets: list[Target]) -> list[Observed | None]:
        return [self.read(t) for t in targets]

    def users(self, target: Target, observed: Observed) -> list[str]:
        """Backend ids of objects that use this one and keep it from being deleted (the
        endpoints serving a job's model). The plan refuses deletes they would break."""
        return []

    def conflicts(self, target: Target) -> list[str]:
        """Backend ids of objects that keep this object from being created or changed as desired
        (another endpoint already serves the model: Azure permits one). The plan refuses first."""
        return []

    # What `conflicts` means, for the plan's error.
    conflict_rule: str = ""

    def delete_notes(self, observed: Observed) -> list[str]:
        """What the plan should say about deleting this object in this backend (a hub that
        Azure only soft-deletes)."""
        return []

    # The backend can read a soft-deleted object itself (Azure's deletedAccounts): its
    # create_notes say so, and the plan does not consult the state's history for it.
    lists_soft_deleted: ClassVar[bool] = False

    def soft_delete_retention(self, target: Target) -> timedelta | None:
        """How long the backend keeps the name of a deleted `target` taken (Azure's soft delete
        of workspaces and accounts); None when a delete frees it at once. Apply records such
        deletes in the state's history, so a plan can warn before the name is reused."""
        return None

    def soft_deleted_note(self, target: Target, deleted_at: str, until: str) -> tuple[str, bool]:
        """What the plan says about creating `target` while the name foundryctl soft-deleted at
        `deleted_at` is still taken (until `until`): the text, and whether the create will fail
        as declared (a warning that names the choices) rather than deal with it (a note)."""
        return (f"foundryctl deleted it at {deleted_at}; the backend keeps the name taken until {until}", True)

    def create_notes(self, target: Target) -> list[str]:
        """What the plan should say about creating this object in this backend (a principal
        type resolved through Microsoft Graph, a role the storage account lacks). Raises
        FieldError when the create would fail and the manifest must change."""
        return []

    @abstractmethod
    def create(self, target: Target, progress: Progress) -> Observed: ...

    @abstractmethod
    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed: ...

    @abstractmethod
    def delete(self, target: Target, progress: Progress) -> None: ...

    @abstractmethod
    def import_(self, backend_id: str, name: str) -> Observed | None:
        """Read an existing object by its backend id (for `foundryctl import`)."""


class Backend(ABC):
    type: ClassVar[str]
    # apply --no-wait: start training jobs and return instead of waiting for them.
    wait_for_jobs: bool = True

    @cached_property
    def stop_waiting(self) -> threading.Event:
        """Set by apply's first Ctrl-C: from then on nothing is waited for, as with --no-wait."""
        return threading.Event()

    @property
    def waiting(self) -> bool:
        """Whether long operations (training) are waited for now."""
        return self.wait_for_jobs and not self.stop_waiting.is_set()

    def pause(self, seconds: float) -> None:
        """Sleep between polls, waking at once when apply stops waiting."""
        self.stop_waiting.wait(seconds)

    @abstractmethod
    def handler(self, kind: str) -> Handler: ...

    def read_many(self, targets: list[Target]) -> dict[str, Observed | None]:
        """Refresh: the actual state of each target, by address."""
        by_kind: dict[str, list[Target]] = {}
        for target in targets:
            by_kind.setdefault(target.kind, []).append(target)
        out: dict[str, Observed | None] = {}
        for kind, group in by_kind.items():
            for target, observed in zip(group, self.handler(kind).read_many(group)):
                out[target.address] = observed
        return out

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """Where this backend points (shown in plan headers and saved plans)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
