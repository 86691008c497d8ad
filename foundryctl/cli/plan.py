"""`foundryctl plan`: refresh, diff, show (text, JSON or a Markdown pull-request comment);
optionally save the plan. Mandatory policy violations fail it after it is shown."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from foundryctl.cli.common import (
    console,
    handle_errors,
    load_stack,
    lock_timeout_option,
    manifest_options,
    print_diagnostics,
    print_notices,
    runnable,
)


def plan_options(func: Any) -> Any:
    for option in reversed([
        click.option("--target", "targets", multiple=True, metavar="ADDRESS",
                     help="Only this resource and what it depends on (repeatable)."),
        click.option("--refresh/--no-refresh", default=True, show_default=True,
                     help="Read actual state from the backend first."),
        click.option("--policy-file", "policy_files", multiple=True, type=click.Path(path_type=Path),
                     help="YAML policy file, besides the manifest's `policies:` (repeatable)."),
        lock_timeout_option,
    ]):
        func = option(func)
    return func


@click.command()
@manifest_options
@plan_options
@click.option("--destroy", is_flag=True, help="Plan to destroy everything in state.")
@click.option("--refresh-only", is_flag=True, help="Only record changes made outside foundryctl.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Save the plan for `apply FILE`.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (the same as --format json).")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]), default=None,
              help="text (default), json (docs/plan-json.md) or markdown (a pull-request comment).")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there are no changes, 1 on error, 2 when there are changes.")
@handle_errors
def plan(stack_args: dict[str, Any], targets: tuple[str, ...], refresh: bool, policy_files: tuple[Path, ...],
         lock_timeout: float, destroy: bool, refresh_only: bool, out_file: Path | None, as_json: bool,
         output_format: str | None, detailed_exitcode: bool) -> None:
    """Refresh actual state, diff it against the manifest and show what apply would do.

    Exit status 1 when a mandatory policy is violated (after the plan is shown; it is not saved).
    """
    from foundryctl.errors import PlanError
    from foundryctl.plan import Mode, save_plan
    from foundryctl.plan.render_text import render_plan
    from foundryctl.policy import PolicyError, mandatory_failures

    if destroy and refresh_only:
        raise PlanError("--destroy and --refresh-only cannot be combined")
    if as_json and output_format not in (None, "json"):
        raise PlanError(f"--json and --format {output_format} cannot be combined")
    output_format = output_format or ("json" if as_json else "text")
    as_json = output_format == "json"
    mode = Mode.DESTROY if destroy else Mode.REFRESH_ONLY if refresh_only else Mode.NORMAL
    stack_args = {**stack_args, "policy_files": list(policy_files)}
    with load_stack(stack_args, check_files=mode is Mode.NORMAL) as stack:
        result = stack.plan(mode=mode, targets=targets, refresh=refresh, lock_timeout=lock_timeout)
        print_notices(stack)
        if result.warnings and not as_json:
            print_diagnostics(result.warnings)
        if as_json:
            click.echo(json.dumps(result.to_dict(include_source=False), indent=2))
        elif output_format == "markdown":
            from foundryctl.plan.render_markdown import render_markdown

            click.echo(render_markdown(result), nl=False)
        else:
            console().print(render_plan(result), end="")
        if mandatory_failures(result.policy_results):
            raise PolicyError(result.policy_results)  # shown, never saved
        if out_file is not None:
            save_plan(result, out_file)
            if output_format == "text":
                console().print(f"\nSaved the plan to {out_file}. Apply exactly this plan with:\n"
                                + runnable(f"    foundryctl apply {out_file}"), markup=False)
    if detailed_exitcode and result.has_changes:
        sys.exit(2)
