"""`foundryctl apply` and `foundryctl destroy`: show the plan, confirm, carry it out."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from foundryctl.cli.common import (
    console,
    handle_errors,
    load_stack,
    manifest_options,
    print_diagnostics,
    print_notices,
    runnable,
    settings,
    stack_flags,
)
from foundryctl.cli.plan import plan_options

if TYPE_CHECKING:
    from foundryctl.apply import ApplyEvent, ApplyResult
    from foundryctl.plan import Plan
    from foundryctl.stack import Stack

_VERBS = {"create": ("Creating", "Creation"), "update": ("Modifying", "Modifications"),
          "delete": ("Destroying", "Destruction"), "state": ("Updating state", "State update")}


def apply_options(func: Any) -> Any:
    func = click.option("--auto-approve", is_flag=True, help="Skip the confirmation prompt.")(func)
    func = click.option("--parallelism", type=click.IntRange(1, 256), default=10, show_default=True,
                        help="Operations run at once.")(func)
    return plan_options(func)


@click.command()
@manifest_options
@apply_options
@click.option("--refresh-only", is_flag=True,
              help="Only record in state the changes made outside foundryctl.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for training jobs to finish (--no-wait: start them; a later apply picks them up).")
@click.argument("plan_file", required=False, type=click.Path(path_type=Path))
@handle_errors
def apply(stack_args: dict[str, Any], targets: tuple[str, ...], refresh: bool, policy_files: tuple[Path, ...],
          lock_timeout: float, parallelism: int, auto_approve: bool, refresh_only: bool, wait: bool,
          plan_file: Path | None) -> None:
    """Make the backend match the manifest.

    With PLAN_FILE (from `plan --out`), apply exactly that plan: it is refused if state or
    the manifest changed since, or if it now violates a mandatory policy. Without it, plan,
    show, ask, then apply.
    """
    from foundryctl.plan import Mode
    from foundryctl.stack import Stack

    if plan_file is not None:
        path = stack_args["path"] if stack_args["path"] != Path(".") else None
        stack, saved = Stack.for_plan_file(plan_file, path=path, state_path=stack_args["state_path"],
                                           policy_files=policy_files, variables=stack_args["variables"])
        settings().manifest_flags = stack_flags(stack)  # hints name the plan's manifest
        with stack, stack.locked("apply", timeout=lock_timeout):
            _carry_out(stack, saved, parallelism, "Apply", wait=wait)
        return
    stack_args = {**stack_args, "policy_files": list(policy_files)}
    with load_stack(stack_args, check_files=not refresh_only) as stack, \
            stack.locked("apply", timeout=lock_timeout):
        print_notices(stack)
        mode = Mode.REFRESH_ONLY if refresh_only else Mode.NORMAL
        result = stack.plan(mode=mode, targets=targets, refresh=refresh)
        if _show_and_confirm(stack, result, auto_approve, "apply"):
            _carry_out(stack, result, parallelism, "Apply", wait=wait)


@click.command()
@manifest_options
@apply_options
@handle_errors
def destroy(stack_args: dict[str, Any], targets: tuple[str, ...], refresh: bool, policy_files: tuple[Path, ...],
            lock_timeout: float, parallelism: int, auto_approve: bool) -> None:
    """Destroy everything foundryctl manages for this manifest, dependents first."""
    from foundryctl.plan import Mode

    stack_args = {**stack_args, "policy_files": list(policy_files)}
    with load_stack(stack_args, check_files=False) as stack, stack.locked("destroy", timeout=lock_timeout):
        print_notices(stack)
        result = stack.plan(mode=Mode.DESTROY, targets=targets, refresh=refresh)
        if _show_and_confirm(stack, result, auto_approve, "destroy"):
            _carry_out(stack, result, parallelism, "Destroy")


def _show_and_confirm(stack: Stack, plan: Plan, auto_approve: bool, what: str) -> bool:
    from foundryctl.errors import FoundryctlError
    from foundryctl.plan.render_text import render_plan
    from foundryctl.policy import PolicyError, mandatory_failures

    out = console()
    if plan.warnings:
        print_diagnostics(plan.warnings)
    out.print(render_plan(plan), end="")
    if mandatory_failures(plan.policy_results):
        raise PolicyError(plan.policy_results)  # before asking: the answer would not matter
    if not plan.has_changes:
        if plan.repairs:  # only state catching up with what exists: nothing to ask about
            stack.apply(plan)
            out.print(f"State reconciled with the backend ({len(plan.repairs)} record(s)).")
        return False
    if auto_approve:
        return True
    if not sys.stdin.isatty():
        raise FoundryctlError(f"{what} needs confirmation, and there is no terminal to ask on",
                              hint="pass --auto-approve, or save a plan with `plan --out` and apply it")
    out.print(f"\n[bold]Do you really want to {what}?[/]\n  foundryctl will perform the actions "
              "above. Only 'yes' will be accepted.\n")
    answer = click.prompt("  Enter a value", default="", show_default=False)
    if answer.strip() != "yes":
        raise FoundryctlError(f"{what.capitalize()} cancelled.")
    out.print()
    return True


def _carry_out(stack: Stack, plan: Plan, parallelism: int, title: str, wait: bool = True) -> None:
    out = console()
    lock = threading.Lock()
    bars = _Bars(out)

    def show(event: ApplyEvent) -> None:
        if event.kind == "progress" and event.total and out.is_terminal:
            with lock:
                bars.update(event)
            return
        doing, done = _VERBS.get(event.verb, (event.verb, event.verb))
        line = {
            "start": f"{event.address}: {doing}...",
            "progress": f"{event.address}: {event.message} [{event.elapsed:.0f}s elapsed]",
            "done": f"{event.address}: {done} complete after {event.elapsed:.1f}s"
                    + (f" [id={event.backend_id}]" if event.backend_id else "")
                    + (f"; {event.pending}, not waited for" if event.pending else ""),
            "error": f"{event.address}: {doing} failed after {event.elapsed:.1f}s",
        }[event.kind]
        with lock:
            if event.kind in ("done", "error"):
                bars.finish(event.address)
            bars.console.print(line, markup=False, style="red" if event.kind == "error" else None)

    def interrupted(running: list[str]) -> None:
        with lock:
            bars.stop()
            _tell_interrupt(running)

    from foundryctl.apply import ApplyAborted

    try:
        result = stack.apply(plan, parallelism=parallelism, on_event=show, wait=wait, on_interrupt=interrupted)
    except ApplyAborted as exc:
        err = console(stderr=True)
        err.print("\n[bold red]Two interrupts received: exiting now.[/]")
        if exc.running:
            err.print("Still running: " + ", ".join(exc.running) + ". State holds their intent, and the next "
                      "plan reconciles whatever they did (nothing is lost or left untracked).", markup=False)
        # Exit without unwinding: leaving would close the backend under the running operations
        # and join their threads (interpreter exit waits for them). Their intents are in state.
        stack.abandon_lock()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    finally:
        bars.stop()
    if not plan.needs_apply:
        out.print("No changes. Nothing to apply.")
        return
    _summarise(result, title)
    _show_deferred(stack, result)
    _show_endpoints(stack, plan)
    if not result.ok:
        sys.exit(1 if result.failures else 130)


def _tell_interrupt(running: list[str]) -> None:
    """Terraform's "Interrupt received", with what each running operation does now."""
    err = console(stderr=True)
    err.print("\n[bold yellow]Interrupt received.[/] Stopping: no new operation starts, and those "
              "running finish and are recorded in state.")
    for operation in running:
        address = operation.split(" (", 1)[0]
        if address.startswith("FineTuneJob.") and operation.endswith(("(create)", "(update)")):
            err.print(f"  {operation}: training keeps running, detached; apply stops waiting for it. "
                      "The next apply picks it up (and moves deployments to its model once it is "
                      "trained); " + runnable("`foundryctl destroy --target` stops it."), markup=False)
        else:
            err.print(f"  {operation}: finishing", markup=False)
    err.print("Press Ctrl-C again to exit at once (state stays consistent; the next plan reconciles).")


def _show_deferred(stack: Stack, result: ApplyResult) -> None:
    """What --no-wait (or Ctrl-C) left running, and what waits for it until a later apply."""
    if not result.waiting_on and not result.deferred:
        return
    out = console()
    for address, why in result.waiting_on:
        out.print(f"\n{address}: {why}; not waited for.", markup=False)
        if address.startswith("FineTuneJob."):
            name = address.partition(".")[2]
            out.print(runnable(f"  follow it: foundryctl jobs logs {name} --follow"), markup=False)
    if result.deferred:
        out.print("Left for the next apply, once that finishes (what serves now keeps serving): "
                  + ", ".join(op for op, _ in result.deferred), markup=False)
        out.print(runnable("  then run: foundryctl apply"), markup=False)


def _show_endpoints(stack: Stack, plan: Plan) -> None:
    """Where the deployments this apply touched answer, and what they said to a sample question."""
    from rich.markup import escape

    from foundryctl.plan.model import Action

    touched = {c.address for c in plan.changes if c.kind == "Deployment"
               and c.action in (Action.CREATE, Action.UPDATE, Action.REPLACE)}
    records = [r for r in stack.state.records() if r.address in touched and r.outputs.get("endpoint")]
    out = console()
    for record in records:
        out.print(f"\n[bold]{record.address}[/] serves at {record.outputs['endpoint']} "
                  + escape(runnable(f"(keys: foundryctl deployments keys {record.name})")))
        sample = record.outputs.get("sample")
        if sample:
            out.print(f"  Q: {sample['prompt']}", markup=False)
            out.print(f"  A: {sample['answer']}", markup=False)


class _Bars:
    """Progress bars for measurable work (training), on a terminal; other lines print above."""

    def __init__(self, out: Any):
        self.out = out
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    @property
    def console(self) -> Any:
        return self._progress.console if self._progress is not None else self.out

    def update(self, event: ApplyEvent) -> None:
        if self._progress is None:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                      TextColumn("{task.fields[detail]}"), console=self.out, transient=False)
            self._progress.start()
        task = self._tasks.get(event.address)
        if task is None:
            task = self._tasks[event.address] = self._progress.add_task(
                event.address, total=event.total, detail="")
        self._progress.update(task, completed=event.completed or 0, total=event.total, detail=event.message)

    def finish(self, address: str) -> None:
        task = self._tasks.pop(address, None)
        if task is not None and self._progress is not None:
            self._progress.remove_task(task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _summarise(result: ApplyResult, title: str) -> None:
    out = console()
    counts = f"{result.added} added, {result.changed} changed, {result.destroyed} destroyed"
    if result.repaired:
        counts += f"; {result.repaired} state record(s) reconciled"
    if result.ok:
        out.print(f"\n[bold green]{title} complete![/] Resources: {counts}.")
        return
    err = console(stderr=True)
    err.print(f"\n[bold red]{title} did not finish.[/] Resources: {counts}.")
    if result.interrupted:
        err.print("Interrupted: operations that were running finished and are recorded in state.")
    for address, verb, error in result.failures:
        hint = getattr(error, "hint", None)
        err.print(f"  {address} ({verb}): {error}", markup=False, style="red")
        if hint:
            err.print(f"    hint: {runnable(hint)}", markup=False, style="cyan")
    if result.not_started:
        err.print(f"  {len(result.not_started)} operation(s) did not start: "
                  + ", ".join(result.not_started[:10]) + (" ..." if len(result.not_started) > 10 else ""),
                  markup=False)
    err.print("Everything that succeeded is recorded in state; fix the problem and apply again.")
