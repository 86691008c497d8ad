"""The Python API: a manifest with its state and backend. The CLI is a thin layer over it.

    stack = Stack.load("manifests/quickstart.yaml", variables={"location": "eastus2"})
    plan = stack.plan()
    result = stack.apply(plan)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from foundryctl.apply import ApplyResult, apply_plan
from foundryctl.apply.applier import EventSink
from foundryctl.backends import open_backend
from foundryctl.backends.base import Backend, Target
from foundryctl.errors import Diagnostic, ManifestError, PlanError, StateError
from foundryctl.manifest import Manifest, load_manifest
from foundryctl.plan import Mode, Plan, PlanOptions, load_plan, make_plan
from foundryctl.plan.soft_deleted import held_names
from foundryctl.sensitive import reveal
from foundryctl.state import LockInfo, ResourceRecord, Status, Store, open_state


def restore_sensitive(plan: Plan, manifest: Manifest) -> None:
    """Put back into a saved plan the sensitive values it holds only as hashes, from the
    manifest loaded again for it (whose fingerprint apply checks against the plan's)."""
    if not manifest.sensitive:
        return
    for change in plan.changes:
        decl = manifest.resources.get(change.address)
        if change.after is not None and decl is not None and change.after != decl.attributes:
            change.after = decl.attributes
        if change.before is not None and change.after is not None:
            change.before = reveal(change.before, change.after)


class Stack:
    """One manifest (with its variables), its state file and its backend."""

    def __init__(self, manifest: Manifest, *, source: dict[str, Any] | None = None,
                 state_path: str | os.PathLike | None = None,
                 policy_files: Sequence[str | os.PathLike] = ()):
        self.manifest = manifest
        self.source = source or {"files": manifest.files}
        # Policy files besides the manifest's own `policies:` (checked at plan and apply).
        self.policy_files = [str(f) for f in policy_files]
        # --state PATH always means a SQLite file; without it the manifest's state block decides
        # (no path for a remote `azure_blob` state).
        self.state_path: Path | None = Path(state_path) if state_path else (
            manifest.resolve_path(manifest.state.path) if manifest.state.type == "sqlite" else None)
        self.notices: list[Diagnostic] = []  # things to tell the user (e.g. a stale lock released)
        self._state: Store | None = None
        self._backend: Backend | None = None
        self._lock: LockInfo | None = None

    @classmethod
    def load(cls, path: str | os.PathLike = ".", *, variables: Mapping[str, Any] | None = None,
             var_files: Sequence[str | os.PathLike] = (), env: Mapping[str, str] | None = None,
             state_path: str | os.PathLike | None = None, check_files: bool = True,
             policy_files: Sequence[str | os.PathLike] = ()) -> Stack:
        """`check_files=False` for operations that do not create or update (destroy,
        refresh-only, state): they must work when a data file is missing or broken."""
        manifest = load_manifest(path, variables=variables, var_files=var_files, env=env,
                                 check_files=check_files)
        source = {"path": str(Path(path).resolve()), "files": manifest.files,
                  "variables": dict(variables or {}),
                  "var_files": [str(Path(f).resolve()) for f in var_files],
                  "state_path": str(Path(state_path).resolve()) if state_path else None,
                  "policy_files": [str(Path(f).resolve()) for f in policy_files]}
        return cls(manifest, source=source, state_path=state_path, policy_files=policy_files)

    @classmethod
    def for_plan_file(cls, plan_file: str | os.PathLike, *, path: str | os.PathLike | None = None,
                      env: Mapping[str, str] | None = None,
                      state_path: str | os.PathLike | None = None,
                      policy_files: Sequence[str | os.PathLike] = (),
                      variables: Mapping[str, Any] | None = None) -> tuple[Stack, Plan]:
        """The stack a saved plan was made for (same manifest path, variables, var files and
        policy files; `policy_files` adds more). `variables` gives the values of sensitive
        variables, which saved plans do not keep."""
        plan = load_plan(plan_file)
        source = plan.manifest_source
        manifest_path = path or source.get("path")
        if not manifest_path:
            raise PlanError(f"{plan_file} does not say which manifest it was made from",
                            hint="pass the manifest with -f")
        try:
            stack = cls.load(manifest_path, variables={**(source.get("variables") or {}), **(variables or {})},
                             var_files=source.get("var_files", ()), env=env,
                             state_path=state_path or source.get("state_path"),
                             check_files=plan.mode is Mode.NORMAL,
                             policy_files=[*source.get("policy_files", []), *policy_files])
        except ManifestError as exc:
            unset = [n for n in source.get("sensitive_variables", []) if n not in (variables or {})]
            if not unset:
                raise
            raise PlanError(f"{plan_file} does not keep the values of sensitive variables "
                            f"({', '.join(unset)}), and the manifest cannot be loaded without them",
                            diagnostics=exc.diagnostics,
                            hint="pass them again when applying: foundryctl apply PLAN_FILE "
                                 + " ".join(f"--var {n}=..." for n in unset)) from None
        plan.sensitive = stack.manifest.sensitive
        restore_sensitive(plan, stack.manifest)
        return stack, plan

    # -- parts ---------------------------------------------------------------------------

    @property
    def state(self) -> Store:
        if self._state is None:
            self._state = open_state(self.manifest.state, self.manifest.root, path=self.state_path)
        return self._state

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = open_backend(self.manifest.backend, self.manifest.root)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._state is not None:
            self._state.close()
            self._state = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def locked(self, operation: str, *, timeout: float = 0.0) -> Iterator[LockInfo]:
        """Hold the state lock (re-entrant within this Stack)."""
        if self._lock is not None:  # already held by an outer call (apply = plan + apply)
            yield self._lock
            return
        lock, stale = self.state.acquire_lock(operation, timeout=timeout)
        if stale is not None:
            self.notices.append(Diagnostic.warning(
                f"released a stale state lock: {stale.describe()} (that process is gone)",
                code="stale-lock"))
        self._lock = lock
        try:
            yield lock
        finally:
            self._lock = None
            self.state.release_lock(lock.id)

    def abandon_lock(self) -> None:
        """Release the state lock now, for a process about to exit without unwinding (a
        second Ctrl-C); a lock that cannot be released is left to stale-lock recovery."""
        if self._lock is not None:
            try:
                self.state.release_lock(self._lock.id)
            except Exception:  # noqa: BLE001 - exiting anyway; the lock's holder is then gone
                pass
            self._lock = None

    # -- plan and apply ------------------------------------------------------------------

    def plan(self, *, mode: Mode | str = Mode.NORMAL, targets: Sequence[str] = (), refresh: bool = True,
             lock_timeout: float = 0.0) -> Plan:
        options = PlanOptions(mode=Mode(mode), targets=list(targets), refresh=refresh)
        with self.locked("plan", timeout=lock_timeout):
            plan = make_plan(self.manifest, self.state.snapshot(), self.backend, options, self.source,
                             lambda: held_names(self.state.history()))
        self.assess(plan)
        return plan

    def assess(self, plan: Plan) -> None:
        """Set the plan's cost estimate and policy results. Mandatory violations do not raise
        here (the plan is still shown); `apply` refuses them (see `check_policies`)."""
        from foundryctl.cost import estimate_cost
        from foundryctl.policy import evaluate_plan

        plan.cost = estimate_cost(plan, self.manifest)
        plan.policy_results = self._redacted(evaluate_plan(plan, self.manifest, self.policy_files, plan.cost))

    def check_policies(self, plan: Plan) -> None:
        """Evaluate the policies again, as they are now, over the plan; raise PolicyError when
        a mandatory one is violated (a saved plan is re-checked when it is applied)."""
        from foundryctl.cost import estimate_cost
        from foundryctl.policy import enforce, evaluate_plan

        enforce(self._redacted(evaluate_plan(plan, self.manifest, self.policy_files,
                                             estimate_cost(plan, self.manifest))))

    def _redacted(self, results: list[Any]) -> list[Any]:
        """Policy results whose messages quote no sensitive value (they are printed as they are)."""
        secrets = self.manifest.sensitive
        if secrets:
            for result in results:
                result.violations = [replace(v, message=secrets.redact_text(v.message))
                                     for v in result.violations]
        return results

    def check_plan_current(self, plan: Plan) -> None:
        """Refuse a saved plan whose state or manifest moved on since it was made."""
        if plan.lineage != self.state.lineage:
            raise PlanError("the saved plan was made for a different state (lineage "
                            f"{plan.lineage}, this state is {self.state.lineage})",
                            hint="make a new plan against this state")
        serial = self.state.serial
        if plan.serial != serial:
            raise PlanError(f"the saved plan is stale: state changed since it was made "
                            f"(serial {plan.serial} -> {serial})", hint="run `foundryctl plan` again")
        if plan.manifest_fingerprint != self.manifest.fingerprint:
            missing = plan.manifest_source.get("sensitive_variables")
            raise PlanError("the manifest (or its variables or environment) changed since the plan "
                            "was made", hint=(f"pass the sensitive variables ({', '.join(missing)}) "
                                              "with the values the plan was made with, or run "
                                              "`foundryctl plan` again") if missing
                            else "run `foundryctl plan` again")
        current = self.backend.describe()
        if plan.backend != current:
            differs = ", ".join(f"{key} {plan.backend.get(key)!r} -> {current.get(key)!r}"
                                for key in sorted(set(plan.backend) | set(current))
                                if plan.backend.get(key) != current.get(key))
            raise PlanError(f"the saved plan was made for another backend ({differs})",
                            hint="run `foundryctl plan` again")

    def apply(self, plan: Plan, *, parallelism: int = 10, on_event: EventSink | None = None,
              lock_timeout: float = 0.0, wait: bool = True,
              on_interrupt: Callable[[list[str]], None] | None = None) -> ApplyResult:
        """`wait=False`: long operations (training) are started and not waited for; a later
        plan shows them in progress and a later apply picks them up. The first Ctrl-C
        makes the rest of the apply behave so (no new operation starts, training runs on
        detached); `on_interrupt` hears which operations were running."""
        self.backend.wait_for_jobs = wait
        self.backend.stop_waiting.clear()

        def interrupted(running: list[str]) -> None:
            self.backend.stop_waiting.set()
            if on_interrupt is not None:
                on_interrupt(running)

        with self.locked("apply", timeout=lock_timeout):
            self.check_plan_current(plan)
            self.check_policies(plan)
            if not plan.needs_apply:
                return ApplyResult()
            return apply_plan(plan, self.state, self.backend, parallelism=parallelism, on_event=on_event,
                              on_interrupt=interrupted)

    # -- state management ----------------------------------------------------------------

    def import_resource(self, address: str, backend_id: str, *, lock_timeout: float = 0.0) -> ResourceRecord:
        """Adopt an existing object into state under an address the manifest declares."""
        decl = self.manifest.resources.get(address)
        if decl is None:
            raise StateError(f"{address} is not declared in the manifest",
                             hint="add the resource to the manifest first, then import it")
        with self.locked("import", timeout=lock_timeout):
            if self.state.get(address) is not None:
                raise StateError(f"{address} is already managed (see `foundryctl state show {address}`)")
            handler = self.backend.handler(decl.kind.name)
            observed = handler.import_(backend_id, decl.name)
            if observed is None:
                raise StateError(f"no {decl.kind.name} with id {backend_id} exists in the backend")
            expected = handler.identify(Target(address, decl.kind.name, decl.name, decl.attributes))
            if expected.lower() != observed.id.lower():
                self.notices.append(Diagnostic.warning(
                    f"imported {observed.id}, but the manifest's settings describe {expected}; "
                    "the next plan will show the difference", address=address, code="import-mismatch"))
            secrets = self.manifest.sensitive  # state keeps sensitive values as salted hashes
            record = ResourceRecord(address, decl.kind.name, decl.name, observed.id, Status.READY,
                                    secrets.redact(observed.attributes, stored=True),
                                    secrets.redact(observed.outputs, stored=True),
                                    self.manifest.graph.dependencies(address), decl.spec.protect)
            self.state.put(record)
            self.state.append_history("import", {"address": address, "backend_id": observed.id})
            return record

    def state_rm(self, addresses: Sequence[str], *, lock_timeout: float = 0.0) -> list[ResourceRecord]:
        """Forget resources without deleting them (they stay in the backend)."""
        with self.locked("state rm", timeout=lock_timeout):
            records = []
            for address in addresses:
                record = self.state.get(address)
                if record is None:
                    raise StateError(f"{address} is not in state")
                records.append(record)
            self.state.write(removes=addresses)
            # The history keeps what was forgotten, so nothing is lost.
            self.state.append_history("state-rm", {"removed": [r.to_dict() for r in records]})
            return records
