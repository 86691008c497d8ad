"""`foundryctl graph`: the manifest's dependency graph for Graphviz or Mermaid."""

from __future__ import annotations

from typing import Any

import click

from foundryctl.cli.common import handle_errors, manifest_options


@click.command()
@manifest_options
@click.option("--format", "output_format", type=click.Choice(["dot", "mermaid"]), default="dot",
              show_default=True)
@handle_errors
def graph(stack_args: dict[str, Any], output_format: str) -> None:
    """Print the dependency graph; an arrow points from a resource to what it depends on."""
    from foundryctl.graph.render import to_dot, to_mermaid
    from foundryctl.manifest import load_manifest

    manifest = load_manifest(stack_args["path"], variables=stack_args["variables"],
                             var_files=stack_args["var_files"], check_files=False)
    click.echo(to_dot(manifest.graph) if output_format == "dot" else to_mermaid(manifest.graph), nl=False)
