"""pydantic ValidationErrors as positioned diagnostics with 'did you mean' suggestions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from foundryctl.errors import Diagnostic, Position
from foundryctl.suggest import closest

_PREFIXES = ("Value error, ", "Assertion failed, ")


def validation_diagnostics(
    exc: ValidationError,
    data: Any,
    model: type[BaseModel],
    position_of: Callable[[tuple], Position],
    key_position_of: Callable[[tuple], Position | None],
    address: str | None,
    prefix: tuple = (),
) -> list[Diagnostic]:
    """One diagnostic per pydantic error; `prefix` is prepended to paths for positions.

    An unknown key that looks like a missing required one ('locaton' for 'location') is
    reported once, as the unknown key with its suggestion.
    """
    errors = exc.errors(include_url=False)
    paths = [_data_path(e["loc"], data) for e in errors]
    missing = {p for e, p in zip(errors, paths) if e["type"] == "missing"}
    suggestions: dict[tuple, str | None] = {}
    for error, path in zip(errors, paths):
        if error["type"] == "extra_forbidden":
            suggestions[path] = closest(str(path[-1]), _field_names(model, path[:-1]))
    folded = {p[:-1] + (s,) for p, s in suggestions.items() if s and p[:-1] + (s,) in missing}

    out: list[Diagnostic] = []
    for error, path in zip(errors, paths):
        if error["type"] == "extra_forbidden":
            message = f"unknown key {str(path[-1])!r}"
            suggestion = suggestions[path]
            if suggestion:
                message += f"; did you mean {suggestion!r}?"
            else:
                allowed = _field_names(model, path[:-1])
                message += f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""
            position = key_position_of(prefix + path) or position_of(prefix + path)
            out.append(Diagnostic.error(message, position, address, code="unknown-key"))
        elif error["type"] == "missing":
            if path not in folded:
                out.append(Diagnostic.error(f"missing required field {_dotted(path)!r}",
                                            position_of(prefix + path[:-1]), address,
                                            code="missing-field"))
        else:
            message = error["msg"]
            for p in _PREFIXES:
                message = message.removeprefix(p)
            where = f"{_dotted(path)}: " if path else ""
            out.append(Diagnostic.error(f"{where}{message}", position_of(prefix + path), address,
                                        code="invalid-value"))
    return out


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _data_path(loc: tuple, data: Any) -> tuple:
    """pydantic's loc with union/validator tags dropped: only the steps that exist in the data."""
    path: list = []
    current = data
    for step in loc:
        if isinstance(current, dict) and step in current:
            path.append(step)
            current = current[step]
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            path.append(step)
            current = current[step]
        elif isinstance(step, str) and (isinstance(current, dict) or current is None) and not _is_tag(step):
            path.append(step)  # a missing key: keep it so the message names it
            current = None
    return tuple(path)


def _is_tag(step: str) -> bool:
    return "[" in step or step[:1].isupper() or step in ("function-after", "function-before")


def _field_names(model: type[BaseModel], path: tuple) -> set[str]:
    models = [model]
    for step in path:
        if isinstance(step, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in models:
            info = m.model_fields.get(step)
            if info is not None:
                nxt.extend(_models_in(info.annotation))
        models = nxt
    return {name for m in models for name in m.model_fields}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]
