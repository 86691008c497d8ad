"""Diagnostics and the exceptions that carry them.

Every problem a user can cause is reported as a Diagnostic with a source position and,
where one applies, the resource address. Exceptions here are the only ones the CLI turns
into a clean message; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    position: Position | None = None
    address: str | None = None
    code: str = ""
    hint: str | None = None

    @classmethod
    def error(cls, message: str, position: Position | None = None, address: str | None = None,
              code: str = "", hint: str | None = None) -> Diagnostic:
        return cls(Severity.ERROR, message, position, address, code, hint)

    @classmethod
    def warning(cls, message: str, position: Position | None = None, address: str | None = None,
                code: str = "", hint: str | None = None) -> Diagnostic:
        return cls(Severity.WARNING, message, position, address, code, hint)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.position}: " if self.position else ""
        what = f"{self.address}: " if self.address else ""
        text = f"{where}{self.severity.value}: {what}{self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text

    def to_dict(self) -> dict:
        out: dict = {"severity": self.severity.value, "code": self.code, "message": self.message}
        if self.address:
            out["address"] = self.address
        if self.position:
            out.update(file=self.position.file, line=self.position.line, column=self.position.column)
        if self.hint:
            out["hint"] = self.hint
        return out


def sort_diagnostics(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Order by file and line so reports read top to bottom."""
    def key(d: Diagnostic) -> tuple:
        p = d.position
        return (p is None, p.file if p else "", p.line if p else 0, p.column if p else 0)
    return sorted(diagnostics, key=key)


class FoundryctlError(Exception):
    """A problem the user can act on; the CLI prints it without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, address: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.address = address


class ManifestError(FoundryctlError):
    """The manifest (or a variable file) is invalid; carries every problem found."""

    def __init__(self, diagnostics: list[Diagnostic], *, sensitive_names: frozenset[str] = frozenset()):
        self.diagnostics = sort_diagnostics(diagnostics)
        self.sensitive_names = sensitive_names  # so that hints do not repeat those --var values
        errors = [d for d in self.diagnostics if d.is_error]
        super().__init__(f"{len(errors)} error(s) in the manifest")


class PlanError(FoundryctlError):
    """The plan cannot be made or must not be applied (protect, stale plan, ...)."""

    def __init__(self, message: str, *, diagnostics: list[Diagnostic] | None = None,
                 hint: str | None = None, address: str | None = None):
        super().__init__(message, hint=hint, address=address)
        self.diagnostics = diagnostics or []


class StateError(FoundryctlError):
    """The state file is unusable or an operation on it is not allowed."""


class StateLockedError(StateError):
    def __init__(self, message: str, holder: object, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.holder = holder


class BackendError(FoundryctlError):
    """The backend refused or failed an operation; `code` follows ARM's error codes."""

    def __init__(self, code: str, message: str, *, hint: str | None = None,
                 address: str | None = None):
        super().__init__(message, hint=hint, address=address)
        self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
