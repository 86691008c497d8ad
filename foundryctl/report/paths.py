"""Paths in CI reports: relative to the repository root, so annotations land on the files."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


def report_root() -> Path:
    """The directory report paths are relative to: the checkout on GitHub Actions
    ($GITHUB_WORKSPACE), the working directory elsewhere."""
    return Path(os.environ.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()


def relative_to_root(file: str, root: Path | None = None) -> str | None:
    """`file` (as a diagnostic names it: relative to the working directory, or absolute) as a
    POSIX path relative to `root`; None when it lies outside."""
    root = root or report_root()
    try:
        relative = Path(file).resolve().relative_to(root)
    except ValueError:
        return None
    return PurePosixPath(*relative.parts).as_posix()
