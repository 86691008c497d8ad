"""Reports of files already validated in this process, so validate, plan and apply of one
manifest read a large file once. A file that changed (size or mtime) is validated again."""

from __future__ import annotations

import os
from pathlib import Path

from foundryctl.datasets.report import DatasetReport
from foundryctl.datasets.validator import ValidationOptions, validate_dataset

_REPORTS: dict[tuple, DatasetReport] = {}
_LIMIT = 64


def report_for(path: str | os.PathLike, options: ValidationOptions) -> DatasetReport:
    resolved = Path(path).resolve()
    stat = resolved.stat()
    counter = options.counter.description if options.counter else None
    key = (str(resolved), stat.st_size, stat.st_mtime_ns, stat.st_ino, counter, options.base_model,
           options.context_length, options.epochs, options.split, options.max_problems,
           options.count_tokens, options.role, options.task, options.labels)
    found = _REPORTS.get(key)
    if found is None:
        if len(_REPORTS) >= _LIMIT:
            _REPORTS.pop(next(iter(_REPORTS)))
        found = _REPORTS[key] = validate_dataset(resolved, options)
        found.path = str(path)
    return found
