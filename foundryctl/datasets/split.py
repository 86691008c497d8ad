"""Writing a deterministic train/validation split of a validated file.

The validator decides the split (`DatasetReport.split`): each example's seeded key is a
hash of its content, and the examples with the smallest keys are held out. This module
routes the lines accordingly, whole lines only, so a conversation is never cut in two.
The same file and seed always give the same two files, byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from foundryctl.datasets.report import DatasetReport
from foundryctl.datasets.validator import BLOCK_BYTES, example_digest, split_key


@dataclass(frozen=True)
class SplitPart:
    path: Path
    sha256: str
    size: int
    examples: int


def write_split(source: str | os.PathLike, report: DatasetReport, training_out: str | os.PathLike,
                validation_out: str | os.PathLike) -> tuple[SplitPart, SplitPart]:
    """Write the two halves of `source` as `report.split` decided them."""
    if report.split is None:
        raise ValueError("the report has no split; validate with ValidationOptions(split=...)")
    if not report.valid:
        raise ValueError(f"{source} has errors; only a valid file can be split")
    seed, threshold = report.split.seed, report.split.threshold
    outputs = [_Writer(Path(training_out)), _Writer(Path(validation_out))]
    try:
        for line in _lines(Path(source)):
            if not line.strip():
                continue
            key = split_key(example_digest(line), seed)
            outputs[key <= threshold].write(line.rstrip(b"\r") + b"\n")
    finally:
        for out in outputs:
            out.close()
    training, validation = (out.part() for out in outputs)
    if (training.examples, validation.examples) != (report.split.training_examples,
                                                    report.split.validation_examples):
        raise RuntimeError(f"{source} changed while it was being split; validate it again")
    return training, validation


def _lines(path: Path):
    carry = b""
    first = True
    with open(path, "rb") as stream:
        while block := stream.read(BLOCK_BYTES):
            if first and block.startswith(b"\xef\xbb\xbf"):
                block = block[3:]
            first = False
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            yield from lines
    if carry:
        yield carry


class _Writer:
    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "wb")
        self.sha = hashlib.sha256()
        self.size = self.examples = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha.update(data)
        self.size += len(data)
        self.examples += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def part(self) -> SplitPart:
        return SplitPart(self.path, self.sha.hexdigest(), self.size, self.examples)
