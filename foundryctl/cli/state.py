"""`foundryctl state list|show|rm|history`, `import` and `force-unlock`."""

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
