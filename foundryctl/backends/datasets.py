"""What both backends check before registering a Dataset: the file is still the one the plan
saw, and it is valid."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundryctl.errors import BackendError

if TYPE_CHECKING:
    from foundryctl.datasets import DatasetReport


def task_options(attributes: dict[str, Any]) -> dict[str, Any]:
    """The validator's options for the dataset's format (chat, or labelled text)."""
    labels = attributes.get("labels")
    return {"task": attributes.get("task") or "chat_completion", "labels": tuple(labels) if labels else None}


def planned_report(source: Path, attributes: dict[str, Any]) -> DatasetReport:
    """The training file's report (tokens counted, split applied), refused when its content
    changed since the plan (`version`) or it has errors."""
    from foundryctl.datasets import ValidationOptions, validate_dataset

    split = attributes.get("validation") or {}
    report = validate_dataset(source, ValidationOptions(
        count_tokens=True, split=(split["split"], split["seed"]) if "split" in split else None,
        **task_options(attributes)))
    if report.sha256 != attributes.get("version"):
        raise BackendError("ContentMismatch", f"{source} changed since the plan was made",
                           hint="run `foundryctl plan` again")
    if not report.valid:
        raise BackendError("InvalidData", f"{source} has {report.error_count} error(s)",
                           hint=f"see them with: foundryctl data validate {source}")
    return report
