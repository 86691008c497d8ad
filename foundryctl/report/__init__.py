"""Machine-readable reports of diagnostics for CI: GitHub workflow commands and SARIF.

`foundryctl validate --format github|sarif` imports these modules only when asked for, so
the CLI starts as fast as before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from foundryctl.errors import Diagnostic

FORMATS = ("github", "sarif")


def render(output_format: str, diagnostics: Sequence[Diagnostic], *,
           resource_count: int | None = None, manifest: str | os.PathLike | None = None) -> str:
    """The report of `diagnostics` in `output_format` (one of FORMATS), ready to print.

    `manifest` (the file or directory validated) is where SARIF places diagnostics that have
    no position of their own.
    """
    if output_format == "github":
        from foundryctl.report.github import render_github

        return render_github(diagnostics, resource_count=resource_count)
    if output_format == "sarif":
        import json

        from foundryctl.report.sarif import sarif_log

        return json.dumps(sarif_log(diagnostics, default_file=_first_file(manifest)), indent=2)
    raise ValueError(f"unknown report format {output_format!r} (known: {', '.join(FORMATS)})")


def _first_file(manifest: str | os.PathLike | None) -> str | None:
    """The manifest file, or the first YAML file of a manifest directory (None if neither)."""
    if manifest is None:
        return None
    path = Path(manifest)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        return str(files[0]) if files else None
    return str(path) if path.is_file() else None
