"""`foundryctl schema`: the manifest's JSON Schema for editors, or its Markdown reference."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to FILE instead of standard output.")
@click.option("--markdown", is_flag=True,
              help="The manifest reference (docs/manifest-reference.md) instead of the JSON Schema.")
def schema(output: Path | None, markdown: bool) -> None:
    """Print the manifest's JSON Schema (draft 2020-12), generated from the kinds' models.

    Point an editor at it with a first line `# yaml-language-server: $schema=FILE`.
    """
    if markdown:
        from foundryctl.manifest.reference import manifest_reference

        text = manifest_reference()
    else:
        import json

        from foundryctl.manifest.json_schema import manifest_json_schema

        text = json.dumps(manifest_json_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {output}", err=True)
