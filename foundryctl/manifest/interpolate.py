"""`${var.NAME}` and `${env.NAME}` interpolation in manifest values.

A string that is exactly one reference takes the referenced value with its type (so
`epochs: ${var.epochs}` stays a number); a reference inside a longer string is inserted as
text. `${env.NAME:-fallback}` supplies a fallback for an unset environment variable, and
`$${` writes a literal `${`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from foundryctl.errors import Diagnostic, Position
from foundryctl.suggest import did_you_mean

_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Interpolator:
    variables: Mapping[str, Any]
    env: Mapping[str, str]
    diagnostics: list[Diagnostic]
    allow_vars: bool = True
    # Positions whose interpolation failed: schema errors there would only repeat the problem.
    failed: set[Position] = field(default_factory=set)
    # Variables declared `sensitive: true`, and every string built from one of them (those are
    # sensitive too: "Bearer ${var.token}").
    sensitive: frozenset[str] = frozenset()
    derived: set[str] = field(default_factory=set)

    def resolve(self, value: Any, position_of: Callable[[tuple], Position], path: tuple = (),
                address: str | None = None) -> Any:
        """Interpolate every string inside `value` (dicts and lists are walked)."""
        if isinstance(value, str):
            return self._string(value, position_of(path), address) if "$" in value else value
        if isinstance(value, dict):
            return {k: self.resolve(v, position_of, path + (k,), address) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, position_of, path + (i,), address) for i, v in enumerate(value)]
        return value

    def _string(self, text: str, position: Position, address: str | None) -> Any:
        whole = _REFERENCE.fullmatch(text)
        if whole and not whole.group(1):
            return self._lookup(whole.group(2), position, address)

        uses_sensitive = False

        def substitute(match: re.Match) -> str:
            nonlocal uses_sensitive
            if match.group(1):  # `$${...}` is an escaped literal
                return "${" + match.group(2) + "}"
            value = self._lookup(match.group(2), position, address)
            uses_sensitive |= self._is_sensitive(match.group(2))
            if isinstance(value, (dict, list)):
                self.diagnostics.append(Diagnostic.error(
                    f"${{{match.group(2)}}} is a {type(value).__name__} and cannot be embedded "
                    "in a string; use it as the whole value", position, address, code="interpolation"))
                return ""
            if isinstance(value, bool):
                return "true" if value else "false"
            return "" if value is None else str(value)

        result = _REFERENCE.sub(substitute, text)
        if uses_sensitive:
            self.derived.add(result)
        return result

    def _is_sensitive(self, expression: str) -> bool:
        namespace, _, rest = expression.strip().partition(".")
        return namespace == "var" and rest in self.sensitive

    def _lookup(self, expression: str, position: Position, address: str | None) -> Any:
        namespace, _, rest = expression.strip().partition(".")
        if namespace == "var":
            if not self.allow_vars:
                self._error(f"${{{expression}}}: variables cannot refer to other variables",
                            position, address)
                return None
            if rest not in self.variables:
                self._error(f"undefined variable {rest!r}{did_you_mean(rest, self.variables)}",
                            position, address, hint="declare it under `variables:` or pass --var")
                return None
            return self.variables[rest]
        if namespace == "env":
            name, has_default, default = rest.partition(":-")
            if not _NAME.match(name):
                self._error(f"invalid environment variable name in ${{{expression}}}", position, address)
                return None
            if name in self.env:
                return self.env[name]
            if has_default:
                return default
            self._error(f"environment variable {name} is not set", position, address,
                        hint=f"export {name}=... or write ${{env.{name}:-default}}")
            return None
        self._error(f"cannot interpolate ${{{expression}}}: expected ${{var.NAME}} or ${{env.NAME}}",
                    position, address, hint="write $${ for a literal ${")
        return None

    def _error(self, message: str, position: Position, address: str | None,
               hint: str | None = None) -> None:
        self.failed.add(position)
        self.diagnostics.append(Diagnostic.error(message, position, address, code="interpolation",
                                                 hint=hint))
