"""`foundryctl validate`: offline checks, every problem in one run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from foundryctl.cli.common import console, hide_in_hints, manifest_options, print_diagnostics, settings


@click.command()
@manifest_options
@click.option("--format", "output_format", type=click.Choice(["text", "json", "github", "sarif"]),
              default="text", show_default=True,
              help="Report format: github prints workflow-command annotations, sarif a SARIF 2.1.0 log.")
@click.option("--policy-file", "policy_files", multiple=True, type=click.Path(path_type=Path),
              help="YAML policy file, besides the manifest's `policies:` (repeatable).")
def validate(stack_args: dict[str, Any], output_format: str, policy_files: tuple[Path, ...]) -> None:
    """Check the manifest without credentials or network: schema, references, cycles, catalog rules.

    Exit status 0 when valid (warnings allowed), 1 when there are errors.
    """
    from foundryctl.errors import ManifestError
    from foundryctl.manifest import load_manifest

    try:
        manifest = load_manifest(stack_args["path"], variables=stack_args["variables"],
                                 var_files=stack_args["var_files"])
        diagnostics, count = manifest.warnings, len(manifest.resources)
        from foundryctl.policy import offline_diagnostics  # policies and prices, offline

        diagnostics = diagnostics + offline_diagnostics(manifest, policy_files)
        hide_in_hints(stack_args, frozenset(manifest.sensitive.names))
    except ManifestError as exc:
        hide_in_hints(stack_args, exc.sensitive_names)
        if settings().debug and output_format == "text":
            raise
        diagnostics, count = exc.diagnostics, None
    errors = [d for d in diagnostics if d.is_error]
    if output_format == "json":
        click.echo(json.dumps({
            "valid": not errors, "resource_count": count,
            "error_count": len(errors), "warning_count": len(diagnostics) - len(errors),
            "diagnostics": [d.to_dict() for d in diagnostics]}, indent=2))
    elif output_format in ("github", "sarif"):
        from foundryctl.report import render

        click.echo(render(output_format, diagnostics, resource_count=count, manifest=stack_args["path"]))
    else:
        if diagnostics:
            print_diagnostics(diagnostics, summary=bool(errors))
        if not errors:
            console().print(f"[bold green]Success![/] The manifest is valid ({count} resources).")
    sys.exit(1 if errors else 0)
