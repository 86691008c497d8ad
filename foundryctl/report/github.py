"""GitHub Actions workflow commands: one `::error`/`::warning` annotation per diagnostic.

GitHub shows each annotation on the pull request's diff at file:line, so a manifest error
appears beside the line that caused it. Escaping follows the runner's rules
(actions/toolkit `command.ts`): `%`, CR and LF in the message; also `:` and `,` in properties.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from foundryctl.report.paths import relative_to_root

if TYPE_CHECKING:
    from foundryctl.errors import Diagnostic


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(diagnostic: Diagnostic, root: Path | None = None) -> str:
    """`::error file=F,line=L,col=C,title=CODE::MESSAGE` (properties only where known)."""
    properties: list[tuple[str, str]] = []
    position = diagnostic.position
    if position is not None:
        # A file outside the checkout cannot be annotated in place; its path stays in the text.
        file = relative_to_root(position.file, root)
        if file is not None:
            properties += [("file", file), ("line", str(position.line)), ("col", str(position.column))]
    properties.append(("title", diagnostic.code or "foundryctl"))
    text = diagnostic.message
    if diagnostic.address:
        text = f"{diagnostic.address}: {text}"
    if position is not None and not any(name == "file" for name, _ in properties):
        text = f"{position}: {text}"
    if diagnostic.hint:
        text += f"\nhint: {diagnostic.hint}"
    command = "error" if diagnostic.is_error else "warning"
    listed = ",".join(f"{name}={escape_property(value)}" for name, value in properties)
    return f"::{command} {listed}::{escape_data(text)}"


def summary(diagnostics: Sequence[Diagnostic], resource_count: int | None) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    if errors:
        return f"foundryctl validate: invalid: {errors} error(s), {warnings} warning(s)"
    return (f"foundryctl validate: the manifest is valid ({resource_count} resources), "
            f"{warnings} warning(s)")


def render_github(diagnostics: Sequence[Diagnostic], *, resource_count: int | None = None,
                  root: Path | None = None) -> str:
    """Every annotation, then a summary line (plain text: the log shows it, GitHub ignores it)."""
    lines = [annotation(d, root) for d in diagnostics]
    lines.append(summary(diagnostics, resource_count))
    return "\n".join(lines)
