"""`foundryctl validate`: offline checks, every problem in one run."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from foundryctl.cli.common import console, manifest_options, print_diagnostics, settings


@click.command()
@manifest_options
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format.")
def validate(stack_args: dict[str, Any], output_format: str) -> None:
    """Check the manifest without credentials or network: schema, references, cycles, catalog rules.

    Exit status 0 when valid (warnings allowed), 1 when there are errors.
    """
    from foundryctl.errors import ManifestError
    from foundryctl.manifest import load_manifest

    try:
        manifest = load_manifest(stack_args["path"], variables=stack_args["variables"],
                                 var_files=stack_args["var_files"])
        diagnostics, count = manifest.warnings, len(manifest.resources)
    except ManifestError as exc:
        if settings().debug and output_format == "text":
            raise
        diagnostics, count = exc.diagnostics, None
    errors = [d for d in diagnostics if d.is_error]
    if output_format == "json":
        click.echo(json.dumps({
            "valid": not errors, "resource_count": count,
            "error_count": len(errors), "warning_count": len(diagnostics) - len(errors),
            "diagnostics": [d.to_dict() for d in diagnostics]}, indent=2))
    else:
        if diagnostics:
            print_diagnostics(diagnostics, summary=bool(errors))
        if not errors:
            console().print(f"[bold green]Success![/] The manifest is valid ({count} resources).")
    sys.exit(1 if errors else 0)
