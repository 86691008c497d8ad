"""`foundryctl state list|show|rm|history|backups|restore`, `import` and `force-unlock`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from foundryctl.cli.common import (
    console,
    handle_errors,
    load_stack,
    lock_timeout_option,
    manifest_options,
    print_notices,
    runnable,
)


@click.group()
def state() -> None:
    """Inspect and edit foundryctl's state (what it manages, and its history)."""


@state.command("list")
@manifest_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def state_list(stack_args: dict[str, Any], as_json: bool) -> None:
    """List managed resources: address, status and backend id."""
    with load_stack(stack_args, check_files=False) as stack:
        records = stack.state.records()
    if as_json:
        click.echo(json.dumps([{"address": r.address, "status": r.status.value, "id": r.backend_id}
                               for r in records], indent=2))
        return
    width = max((len(r.address) for r in records), default=7)
    lines = [f"{'ADDRESS':<{width}}  {'STATUS':<8}  ID"]
    lines += [f"{r.address:<{width}}  {r.status.value:<8}  {r.backend_id or ''}" for r in records]
    click.echo("\n".join(lines))


@state.command("show")
@manifest_options
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def state_show(stack_args: dict[str, Any], address: str, as_json: bool) -> None:
    """Show one resource as recorded: attributes, outputs, dependencies."""
    from foundryctl.errors import StateError
    from foundryctl.plan.render_text import value_text

    with load_stack(stack_args, check_files=False) as stack:
        record = stack.state.get(address)
    if record is None:
        raise StateError(f"{address} is not in state", hint="see `foundryctl state list`")
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
        return
    lines = [f"# {record.address}  ({record.status.value}, serial {record.updated_serial}, "
             f"{record.updated_at})", f"id = {record.backend_id}"]
    for title, values in (("attributes", record.attributes), ("outputs", record.outputs)):
        lines.append(f"{title}:")
        lines += [f"  {key} = {value_text(value)}" for key, value in values.items()]
    lines.append(f"depends on: {', '.join(record.dependencies) or '-'}")
    lines.append(f"protect: {str(record.protect).lower()}")
    click.echo("\n".join(lines))


@state.command("rm")
@manifest_options
@click.argument("addresses", nargs=-1, required=True)
@lock_timeout_option
@handle_errors
def state_rm(stack_args: dict[str, Any], addresses: tuple[str, ...], lock_timeout: float) -> None:
    """Forget resources without deleting them; they stay in the backend (history keeps the record)."""
    with load_stack(stack_args, check_files=False) as stack:
        removed = stack.state_rm(list(addresses), lock_timeout=lock_timeout)
        print_notices(stack)
    for record in removed:
        console().print(f"Removed {record.address} from state (it still exists: {record.backend_id})",
                        markup=False)


@state.command("history")
@manifest_options
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def state_history(stack_args: dict[str, Any], limit: int, as_json: bool) -> None:
    """Who did what to this state, and when (append-only)."""
    with load_stack(stack_args, check_files=False) as stack:
        entries = stack.state.history(limit)
    if as_json:
        click.echo(json.dumps([e.__dict__ for e in entries], indent=2))
        return
    for e in entries:
        detail = e.details.get("outcome") or e.details.get("address") or ""
        summary = e.details.get("summary")
        if summary:
            detail = f"{summary['add']} to add, {summary['change']} to change, {summary['destroy']} to destroy"
        click.echo(f"{e.at}  serial {e.serial:<5} {e.event:<15} {e.user}@{e.host}  {e.command}  {detail}")


@click.command("import")
@manifest_options
@click.argument("address")
@click.argument("backend_id", metavar="ID")
@lock_timeout_option
@handle_errors
def import_command(stack_args: dict[str, Any], address: str, backend_id: str, lock_timeout: float) -> None:
    """Adopt an existing object (by its backend ID) as ADDRESS from the manifest."""
    with load_stack(stack_args, check_files=False) as stack:
        record = stack.import_resource(address, backend_id, lock_timeout=lock_timeout)
        print_notices(stack)
    console().print(f"Import successful! {record.address} is now managed (id {record.backend_id}). "
                    + runnable("Run `foundryctl plan` to see any difference."), markup=False, style="green")


@click.command("force-unlock")
@manifest_options
@click.argument("lock_id")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def force_unlock(stack_args: dict[str, Any], lock_id: str, force: bool) -> None:
    """Release the state lock LOCK_ID (when its holder died on another machine)."""
    from foundryctl.errors import StateError

    with load_stack(stack_args, check_files=False) as stack:
        holder = stack.state.current_lock()
        if holder is None:
            raise StateError("the state is not locked")
        if not force:
            if not sys.stdin.isatty():
                raise StateError("force-unlock needs confirmation", hint="pass --force")
            console().print(f"The lock is held by {holder.describe()}.\nRemoving it while that run is "
                            "alive lets two runs change the same resources.", markup=False)
            if click.prompt("  Type 'yes' to release it", default="", show_default=False) != "yes":
                raise StateError("force-unlock cancelled")
        released = stack.state.force_unlock(lock_id)
    console().print(f"Released the lock held by {released.describe()}.", markup=False)


def _sqlite_state(stack_args: dict[str, Any]) -> Any:
    """The SQLite state file of the manifest (or --state), without opening it."""
    from foundryctl.errors import StateError
    from foundryctl.state.factory import sqlite_path

    with load_stack(stack_args, check_files=False) as stack:
        path = sqlite_path(stack.manifest.state, stack.manifest.root, path=stack.state_path)
    if path is None:
        raise StateError("backups and `state restore` are for a SQLite state file",
                         hint="a blob state keeps its history in blob versions: see docs/state.md")
    return path


@state.command("backups")
@manifest_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def state_backups(stack_args: dict[str, Any], as_json: bool) -> None:
    """List the state file's backups, newest first: serial, time, resource count."""
    from foundryctl.state.backups import backup_dir, list_backups

    path = _sqlite_state(stack_args)
    found = list_backups(path)
    if as_json:
        click.echo(json.dumps([b.to_dict() for b in found], indent=2))
        return
    if not found:
        click.echo(f"No backups in {backup_dir(path)} yet (one is taken before each apply changes the state).")
        return
    lines = [f"{'SERIAL':>6}  {'TIME':<20}  {'RESOURCES':>9}  {'LINEAGE':<8}  PATH"]
    for b in found:
        if b.problem:
            lines.append(f"{'-':>6}  {b.time:<20}  {'-':>9}  {'-':<8}  {b.path}  (cannot be restored: {b.problem})")
        else:
            lines.append(f"{b.serial:>6}  {b.time:<20}  {b.resources:>9}  {(b.lineage or '')[:8]:<8}  {b.path}")
    click.echo("\n".join(lines))


@state.command("restore")
@manifest_options
@click.argument("source", required=False, metavar="[SERIAL|PATH]")
@click.option("--latest", is_flag=True, help="Restore the newest backup of this state.")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Restore a backup of another lineage (another state).")
@lock_timeout_option
@handle_errors
def state_restore(stack_args: dict[str, Any], source: str | None, latest: bool, auto_approve: bool,
                  force: bool, lock_timeout: float) -> None:
    """Replace the state with a backup (backing up the current state first)."""
    from foundryctl.errors import StateError
    from foundryctl.state.restore import choose_backup, open_current, restore

    path = _sqlite_state(stack_args)
    current = open_current(path)
    try:
        lineage = current.store.lineage if current.store else None
        backup = choose_backup(path, source, latest=latest, lineage=lineage)
        if current.problem is None:
            now = (f"the current state (serial {current.store.serial}, {current.resources} resources) "
                   "is backed up first")
        else:
            now = (f"the current file is unusable ({current.problem}); "
                   + ("a copy is kept in the backups" if current.store else "it is moved aside"))
        if not auto_approve:
            if not sys.stdin.isatty():
                raise StateError("state restore needs confirmation", hint="pass --auto-approve")
            console().print(f"Restore {path} to serial {backup.serial} ({backup.resources} resources, "
                            f"taken {backup.time}) from {backup.path};\n{now}.", markup=False)
            if click.prompt("  Type 'yes' to restore it", default="", show_default=False) != "yes":
                raise StateError("state restore cancelled")
        done = restore(path, backup, current, force=force, lock_timeout=lock_timeout)
    finally:
        if current.store is not None:
            current.store.close()
    console().print(f"State restored: {done}. Run `foundryctl plan` to compare it with what exists.",
                    markup=False, style="green")
