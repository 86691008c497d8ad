"""The job directory: the one place a training run keeps everything, readable while it runs.

    config.json          resolved configuration (TrainingConfig)
    status.json          state, pid, epoch/step, ETA, error (replaced atomically)
    train.log            the process's output
    metrics.jsonl        one JSON object per step, evaluation and epoch
    results.csv          Azure's results file shape (step, train/valid loss and token accuracy)
    checkpoints/epoch-N  adapter (or weights), optimizer, scheduler and RNG state; last 3 kept,
                         and any a pin keeps
    checkpoints/pins/    one file per deployment serving a checkpoint of this run: the checkpoint
                         and the selector that chose it (rotation keeps what they pick)
    model/               the final adapter (safetensors); merged/ with merge_weights
    report.html          loss curves, self-contained

The directory is 0700 and what foundryctl writes in it 0600 (the trainer runs with umask 077):
it holds the training data's loss, the model and the log (foundryctl.private_files).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from foundryctl.private_files import open_private_append, private_directory, write_private

QUEUED, RUNNING, COMPLETED, FAILED, CANCELED = "Queued", "Running", "Completed", "Failed", "Canceled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
# Not a state the process writes: it said Running, and it is gone.
INTERRUPTED = "Interrupted"
CHECKPOINT_DONE = "checkpoint.done"


@dataclass
class JobDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def log(self) -> Path:
        return self.path / "train.log"

    def create(self) -> None:
        """Make the directory (0700; one left by an older version is tightened)."""
        private_directory(self.path)

    def open_log(self) -> BinaryIO:
        """The training log, for appending (0600)."""
        self.create()
        return open_private_append(self.log)

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def results(self) -> Path:
        return self.path / "results.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    @property
    def samples(self) -> Path:  # greedy answers to validation prompts, before and after training
        return self.path / "samples.jsonl"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    # -- status ------------------------------------------------------------------------

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def write_status(self, **changes: Any) -> dict[str, Any]:
        status = self.read_status()
        status.update(changes, updated_at=time.time())
        write_private(self.status_file, json.dumps(status, sort_keys=True))
        return status

    def state(self) -> str:
        """The job's state, with a dead process that claimed to run shown as Interrupted."""
        status = self.read_status()
        state = status.get("state", QUEUED)
        if state in (RUNNING, QUEUED) and status.get("pid") and not pid_alive(status["pid"],
                                                                               status.get("pid_start")):
            return INTERRUPTED
        return state

    # -- metrics -----------------------------------------------------------------------

    def read_metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        try:
            lines = self.metrics.read_text().splitlines()
        except OSError:
            return []
        rows = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if kind is None or row.get("type") == kind:
                rows.append(row)
        return rows

    # -- checkpoints -------------------------------------------------------------------

    def checkpoint_dirs(self) -> list[Path]:
        """Complete checkpoints, oldest first (a checkpoint is complete once its marker exists)."""
        if not self.checkpoints.is_dir():
            return []
        found = [p for p in self.checkpoints.iterdir()
                 if p.name.startswith("epoch-") and (p / CHECKPOINT_DONE).exists()]
        return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]))

    def latest_checkpoint(self) -> Path | None:
        dirs = self.checkpoint_dirs()
        return dirs[-1] if dirs else None

    def checkpoint_table(self) -> list[dict[str, Any]]:
        """Each complete checkpoint with where it ends and its epoch's metrics, oldest first."""
        epochs = {row.get("epoch"): row for row in self.read_metrics("epoch")}
        table = []
        for directory in self.checkpoint_dirs():
            epoch = int(directory.name.split("-", 1)[1])
            try:
                marker = json.loads((directory / CHECKPOINT_DONE).read_text())
            except (OSError, ValueError):
                marker = {}
            row = epochs.get(epoch, {})
            metrics = {k: v for k, v in row.items() if k not in ("type", "step", "epoch")
                       and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
            table.append({"name": directory.name, "epoch": epoch, "step": marker.get("step", row.get("step", 0)),
                          "metrics": metrics})
        return table

    # -- pins: checkpoints a deployment serves ---------------------------------------------

    @property
    def pins(self) -> Path:
        return self.checkpoints / "pins"

    def pin(self, user: str, checkpoint: str | None, selector: str) -> None:
        """Record that `user` (an endpoint id) serves `checkpoint`, chosen by `selector`."""
        private_directory(self.checkpoints)
        private_directory(self.pins)
        write_private(self._pin_file(user), json.dumps(
            {"user": user, "checkpoint": checkpoint, "selector": selector}, sort_keys=True))

    def unpin(self, user: str) -> None:
        self._pin_file(user).unlink(missing_ok=True)

    def read_pins(self) -> list[dict[str, Any]]:
        found = []
        for file in sorted(self.pins.glob("*.json")) if self.pins.is_dir() else []:
            try:
                found.append(json.loads(file.read_text()))
            except (OSError, ValueError):
                continue
        return found

    def inherit_pins(self, previous: JobDir) -> None:
        """A retrain's new run keeps what the old run's deployments select (their selectors;
        the checkpoint each picks is decided again by the new run's metrics)."""
        for pin in previous.read_pins():
            if pin.get("user") and pin.get("selector") and not self._pin_file(pin["user"]).exists():
                self.pin(pin["user"], None, pin["selector"])

    def retained(self) -> set[str]:
        """Checkpoints rotation must keep: the ones pinned, and what each pin's selector picks
        among the checkpoints now (all of them for an evaluation's pick, which only the
        evaluation can make)."""
        from foundryctl.kinds.checkpoint import SelectorError, checkpoint_infos, parse_selector, resolve

        table = self.checkpoint_table()
        infos = checkpoint_infos(table)
        keep: set[str] = set()
        for pin in self.read_pins():
            if pin.get("checkpoint"):
                keep.add(pin["checkpoint"])
            try:
                selector = parse_selector(pin.get("selector") or "")
                if selector.evaluation is not None:
                    keep.update(row["name"] for row in table)
                    continue
                keep.add(resolve(selector, self.path.name, infos))
            except SelectorError:
                continue  # picks nothing yet (an epoch still to come)
        return keep

    def _pin_file(self, user: str) -> Path:
        return self.pins / (hashlib.sha256(user.lower().encode()).hexdigest()[:16] + ".json")

    def prune_checkpoints(self, keep: int) -> None:
        """Rotate old checkpoints away, except the last `keep` and those a deployment needs."""
        retained = self.retained()
        for old in self.checkpoint_dirs()[:-keep] if keep > 0 else []:
            if old.name not in retained:
                shutil.rmtree(old, ignore_errors=True)


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (to tell a reused pid from ours), or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, start: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is not None:
        current = process_start_time(pid)
        if current is not None and current != start:
            return False  # the pid was reused by another process
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
