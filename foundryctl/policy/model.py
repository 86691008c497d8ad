"""Policy results as plain data: per rule, what it requires and what violates it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from foundryctl.errors import Diagnostic, Position

ADVISORY, MANDATORY = "advisory", "mandatory"


@dataclass(frozen=True)
class Violation:
    """One thing a rule objects to. Custom rules may return these (or plain strings)."""

    message: str
    address: str | None = None
    position: Position | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "address": self.address}
        if self.position is not None:
            out.update(file=self.position.file, line=self.position.line, column=self.position.column)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Violation:
        position = Position(data["file"], data["line"], data["column"]) if "file" in data else None
        return cls(data["message"], data.get("address"), position)


@dataclass
class PolicyResult:
    rule: str  # "allowed_regions", or "custom:FUNCTION" for a custom rule
    enforcement: str  # ADVISORY or MANDATORY
    source: str  # the manifest file or policy file that declares the rule
    description: str  # what the rule requires, in words
    violations: list[Violation] = field(default_factory=list)
    checked: int = 0  # resources (or plans) looked at
    skipped: str | None = None  # why the rule was not evaluated here (e.g. it needs a plan)

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def status(self) -> str:
        """pass, skipped, warn (advisory violations) or fail (mandatory violations)."""
        if self.skipped:
            return "skipped"
        if self.passed:
            return "pass"
        return "fail" if self.enforcement == MANDATORY else "warn"

    def diagnostics(self) -> list[Diagnostic]:
        make = Diagnostic.error if self.enforcement == MANDATORY else Diagnostic.warning
        return [make(f"policy {self.rule} ({self.enforcement}): {v.message}", v.position, v.address,
                     code=f"policy.{self.rule}", hint=f"declared in {self.source}")
                for v in self.violations]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "enforcement": self.enforcement, "source": self.source,
                "description": self.description, "status": self.status, "checked": self.checked,
                "skipped": self.skipped, "violations": [v.to_dict() for v in self.violations]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyResult:
        return cls(data["rule"], data["enforcement"], data["source"], data["description"],
                   [Violation.from_dict(v) for v in data.get("violations", [])],
                   data.get("checked", 0), data.get("skipped"))


def mandatory_failures(results: list[PolicyResult]) -> list[PolicyResult]:
    return [r for r in results if r.status == "fail"]
