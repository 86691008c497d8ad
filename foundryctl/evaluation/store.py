"""Where an evaluation's runs are kept: one directory per run (results.json with the metric
values, baselines and gate; examples.jsonl with every example's answer and scores) and
latest.json naming the run that stands. Writes are atomic, so a run interrupted midway
leaves the previous results standing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

LATEST = "latest.json"
RESULTS = "results.json"
EXAMPLES = "examples.jsonl"


class EvaluationStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def run_dir(self, key: str) -> Path:
        return self.path / "runs" / key

    def latest(self) -> dict[str, Any] | None:
        return _read(self.path / LATEST)

    def results(self, key: str) -> dict[str, Any] | None:
        return _read(self.run_dir(key) / RESULTS)

    def examples(self, key: str) -> list[dict[str, Any]]:
        path = self.run_dir(key) / EXAMPLES
        try:
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError):
            return []

    def runs(self) -> list[dict[str, Any]]:
        """Every stored run's results, oldest first."""
        found = [r for d in sorted((self.path / "runs").glob("*")) if (r := self.results(d.name))]
        return sorted(found, key=lambda r: r.get("finished_at") or "")

    def save_run(self, key: str, results: dict[str, Any], examples: list[dict[str, Any]]) -> None:
        directory = self.run_dir(key)
        directory.mkdir(parents=True, exist_ok=True)
        _write(directory / EXAMPLES, "".join(json.dumps(e, sort_keys=True) + "\n" for e in examples))
        _write(directory / RESULTS, json.dumps(results, indent=2, sort_keys=True))

    def set_latest(self, summary: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _write(self.path / LATEST, json.dumps(summary, indent=2, sort_keys=True))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
