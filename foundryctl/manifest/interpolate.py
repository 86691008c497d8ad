"""`${var.NAME}` and `${env.NAME}` interpolation in manifest values.

A string that is exactly one reference takes the referenced value with its type (so
`epochs: ${var.epochs}` stays a number); a reference inside a longer string is inserted as
text. `${env.NAME:-fallback}` supplies a fallback for an unset environment variable, and
`$${` writes a literal `${`.

Interpolation is linear in the text and bounded in what it adds: a reference shares the
variable's value, but everything after this walks each use of it, so the values and the
characters references add to the manifest are counted against a budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from foundryctl.errors import Diagnostic, Position
from foundryctl.suggest import did_you_mean

# An expression holds no braces, so each `${` is looked at up to the next brace only: linear,
# even for a string of 100,000 unclosed `${`.
_REFERENCE = re.compile(r"\$(\$?)\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_INSERTED_VALUES = 1_000_000  # values that references to lists and maps add, all uses counted
MAX_INSERTED_CHARS = 64 * 1024 * 1024  # characters that references inside strings add
_ERRORS_PER_VALUE = 5  # a value with a thousand bad references says so five times


@dataclass
class Interpolator:
    variables: Mapping[str, Any]
    env: Mapping[str, str]
    diagnostics: list[Diagnostic]
    allow_vars: bool = True
    # Positions whose interpolation failed: schema errors there would only repeat the problem.
    failed: set[Position] = field(default_factory=set)
    inserted_values: int = 0
    inserted_chars: int = 0
    # Variables declared `sensitive: true`, and every string built from one of them (those are
    # sensitive too: "Bearer ${var.token}").
    sensitive: frozenset[str] = frozenset()
    derived: set[str] = field(default_factory=set)
    _sizes: dict[int, int] = field(default_factory=dict, repr=False)  # id of a variable's value -> values
    _errors_at: dict[Position, int] = field(default_factory=dict, repr=False)

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
            value = self._lookup(whole.group(2), position, address)
            if isinstance(value, (dict, list)):
                self.inserted_values += self._size(value)
                if self.inserted_values > MAX_INSERTED_VALUES:
                    self._error(f"${{{whole.group(2)}}}: references to lists and maps add more than "
                                f"{MAX_INSERTED_VALUES:,} values to the manifest", position, address)
                    return None
            return value

        uses_sensitive = False

        def substitute(match: re.Match) -> str:
            nonlocal uses_sensitive
            if match.group(1):  # `$${...}` is an escaped literal
                return "${" + match.group(2) + "}"
            value = self._lookup(match.group(2), position, address)
            uses_sensitive |= self._is_sensitive(match.group(2))
            if isinstance(value, (dict, list)):
                self._error(f"${{{match.group(2)}}} is a {type(value).__name__} and cannot be embedded "
                            "in a string; use it as the whole value", position, address)
                return ""
            if isinstance(value, bool):
                return "true" if value else "false"
            inserted = "" if value is None else str(value)
            self.inserted_chars += len(inserted)
            if self.inserted_chars > MAX_INSERTED_CHARS:
                self._error(f"${{{match.group(2)}}}: references inside strings add more than "
                            f"{MAX_INSERTED_CHARS // 2**20} MiB of text to the manifest", position, address)
                return ""
            return inserted

        result = _REFERENCE.sub(substitute, text)
        if uses_sensitive:
            self.derived.add(result)
        return result

    def _is_sensitive(self, expression: str) -> bool:
        namespace, _, rest = expression.strip().partition(".")
        return namespace == "var" and rest in self.sensitive

    def _size(self, value: Any) -> int:
        """How many values `value` holds (each use of a shared one counted), walked without recursion."""
        known = self._sizes.get(id(value))
        if known is not None:
            return known
        total, stack = 0, [value]
        while stack:
            item = stack.pop()
            total += 1
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            if total > MAX_INSERTED_VALUES:
                break  # over the budget whatever else it holds
        self._sizes[id(value)] = total
        return total

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
        reported = self._errors_at.get(position, 0)
        self._errors_at[position] = reported + 1
        if reported < _ERRORS_PER_VALUE:
            self.diagnostics.append(Diagnostic.error(message, position, address, code="interpolation",
                                                     hint=hint))
