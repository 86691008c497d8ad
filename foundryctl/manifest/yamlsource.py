"""YAML to plain Python values, remembering where every value came from.

We build dicts, lists and scalars straight from libyaml's event stream (each event has a
start mark) and keep a side table from value path to (line, column), so that any later
error (pydantic's `loc`, a dangling reference, a cycle) can name file:line:column. Building
from events rather than PyYAML's node tree is about five times faster on large manifests.

Hostile input is bounded here, before anything walks the values: nesting depth, the number
of values a file expands to (an alias is shared, not copied, but everything downstream walks
it once per use, so a few hundred bytes of nested aliases would otherwise become gigabytes),
and integer length (Python refuses to print integers over 4,300 digits).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from foundryctl.errors import Diagnostic, Position

try:  # libyaml's parser; PyYAML wheels ship it
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_IMPLICIT = Resolver.yaml_implicit_resolvers
_CONSTRUCTORS = SafeConstructor.yaml_constructors
_constructor = SafeConstructor()

MAX_DEPTH = 64  # nested mappings and lists; real manifests use fewer than ten
MAX_VALUES = 1_000_000  # values in all the files of one load, counting every use of an alias
MAX_INT_CHARS = 100  # far past any count or size a manifest holds; keeps messages printable


@dataclass
class SourceDocument:
    """One YAML document: its values and where each value and mapping key was written."""

    file: str
    data: Any = None
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict, repr=False)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict, repr=False)
    # Duplicate mapping keys (path, where the repeat is, where the first one is): the loader
    # reports them, naming the resource they are in.
    duplicate_keys: list[tuple[Path, Position, int]] = field(default_factory=list, repr=False)
    # Values already reported as invalid here: schema errors at them would only repeat it.
    failed: set[Position] = field(default_factory=set, repr=False)

    def position(self, path: Path) -> Position:
        """Position of the value at `path`, or of its nearest ancestor that has one."""
        while path:
            found = self.positions.get(path)
            if found is not None:
                return Position(self.file, *found)
            path = path[:-1]
        return Position(self.file, *self.positions.get((), (1, 1)))

    def key_position(self, path: Path) -> Position | None:
        found = self.key_positions.get(path)
        return Position(self.file, *found) if found else None


@dataclass
class ValueBudget:
    """Values read so far, shared by the files of one manifest (a directory of files must not
    multiply the limit)."""

    used: int = 0
    limit: int = MAX_VALUES


def load_yaml_documents(text: str, file: str, budget: ValueBudget | None = None
                        ) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Parse every document in `text`; syntax errors come back as diagnostics."""
    diagnostics: list[Diagnostic] = []
    builder = _Builder(file, yaml.parse(text, Loader=_Loader), diagnostics, budget or ValueBudget())
    try:
        documents = builder.documents()
    except _LimitExceeded as exc:
        return [], [exc.diagnostic]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return [], [Diagnostic.error(f"YAML syntax error: {problem}", position, code="yaml-syntax")]
    except yaml.YAMLError as exc:
        return [], [Diagnostic.error(f"YAML error: {exc}", Position(file, 1, 1), code="yaml-syntax")]
    return documents, diagnostics


class _LimitExceeded(Exception):
    """The file is too deep or too large to read; the rest of it is not looked at."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class _Builder:
    def __init__(self, file: str, events: Iterator[Event], diagnostics: list[Diagnostic], budget: ValueBudget):
        self.file = file
        self.events = events
        self.diagnostics = diagnostics
        self.anchors: dict[str, tuple[Any, int]] = {}  # name -> (value, values it expands to)
        self.depth = 0
        self.budget = budget  # values built so far, each use of an alias in full

    def documents(self) -> list[SourceDocument]:
        out = []
        for event in self.events:
            if type(event) is DocumentStartEvent:
                doc = SourceDocument(self.file)
                self.anchors = {}
                doc.data = self.value(next(self.events), (), doc)
                next(self.events)  # DocumentEndEvent
                if doc.data is not None:
                    out.append(doc)
        return out

    def position(self, event: Event) -> Position:
        mark = event.start_mark
        return Position(self.file, mark.line + 1, mark.column + 1)

    def error(self, message: str, event: Event, code: str, doc: SourceDocument | None = None) -> None:
        position = self.position(event)
        self.diagnostics.append(Diagnostic.error(message, position, code=code))
        if doc is not None:
            doc.failed.add(position)

    def count(self, values: int, event: Event) -> None:
        budget = self.budget
        budget.used += values
        if budget.used > budget.limit:
            raise _LimitExceeded(Diagnostic.error(
                f"the manifest holds more than {budget.limit:,} values (in all its files; each use "
                "of an alias counts all the values it stands for); this file is not read further",
                self.position(event), code="yaml-too-large", hint="use fewer aliases or a smaller manifest"))

    def value(self, event: Event, path: Path, doc: SourceDocument) -> Any:
        mark = event.start_mark
        doc.positions[path] = (mark.line + 1, mark.column + 1)
        kind = type(event)
        before = self.budget.used
        self.count(1, event)
        if kind is ScalarEvent:
            result = self.scalar(event, doc)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _LimitExceeded(Diagnostic.error(
                    f"mappings and lists are nested more than {MAX_DEPTH} levels deep here; "
                    "the file is not read further", self.position(event), code="yaml-too-deep"))
            try:
                result = self.mapping(path, doc) if kind is MappingStartEvent else self.sequence(path, doc)
            finally:
                self.depth -= 1
        elif kind is AliasEvent:
            if event.anchor not in self.anchors:
                self.error(f"unknown alias *{event.anchor}", event, "yaml-syntax", doc)
                return None
            # Shared, not copied; but what walks the value later walks it once per use.
            result, size = self.anchors[event.anchor]
            self.count(size - 1, event)
            return result
        else:  # pragma: no cover - libyaml emits nothing else here
            raise yaml.YAMLError(f"unexpected {kind.__name__}")
        anchor = getattr(event, "anchor", None)
        if anchor:
            self.anchors[anchor] = (result, self.budget.used - before)
        return result

    def sequence(self, path: Path, doc: SourceDocument) -> list:
        out: list = []
        for event in self.events:
            if type(event) is SequenceEndEvent:
                return out
            out.append(self.value(event, path + (len(out),), doc))
        return out  # pragma: no cover - the parser reports an unclosed sequence

    def mapping(self, path: Path, doc: SourceDocument) -> dict:
        out: dict = {}
        merges: list[Any] = []
        for event in self.events:
            if type(event) is MappingEndEvent:
                break
            if type(event) is not ScalarEvent:
                self.error("mapping keys must be plain strings", event, "yaml-key")
                self.skip(event)
                self.value(next(self.events), (), SourceDocument(self.file))
                continue
            key = event.value
            if "\x00" in key:
                self.error("a mapping key contains a NUL character", event, "yaml-value", doc)
                key = key.replace("\x00", "")
            if key == "<<" and event.implicit[0] and event.tag is None:  # `<<: *defaults`
                merges.append(self.value(next(self.events), path + ("<<",), doc))
                continue
            key_path = path + (key,)
            if key in out:
                first = doc.key_positions[key_path]
                mark = event.start_mark
                doc.duplicate_keys.append((key_path, Position(self.file, mark.line + 1, mark.column + 1),
                                           first[0]))
                self.value(next(self.events), (), SourceDocument(self.file))  # read past it
                continue
            mark = event.start_mark
            doc.key_positions[key_path] = (mark.line + 1, mark.column + 1)
            out[key] = self.value(next(self.events), key_path, doc)
        for merged in merges:  # explicit keys win; among merged mappings, the first wins
            for source in merged if isinstance(merged, list) else [merged]:
                if isinstance(source, dict):
                    for key, value in source.items():
                        out.setdefault(key, value)
                else:
                    self.diagnostics.append(Diagnostic.error(
                        "`<<` merges mappings only", doc.position(path + ("<<",)), code="yaml-syntax"))
        return out

    def skip(self, event: Event) -> None:
        """Consume the rest of a collection that started with `event`."""
        depth = 1 if type(event) in (MappingStartEvent, SequenceStartEvent) else 0
        while depth:
            kind = type(next(self.events))
            if kind in (MappingStartEvent, SequenceStartEvent):
                depth += 1
            elif kind in (MappingEndEvent, SequenceEndEvent):
                depth -= 1

    def scalar(self, event: ScalarEvent, doc: SourceDocument) -> Any:
        value = event.value
        if "\x00" in value:  # only a "\0" escape writes one; no path, name or text may hold it
            self.error("the value contains a NUL character (\\0)", event, "yaml-value", doc)
            return value.replace("\x00", "")
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return value  # quoted: always a string
            tag = _STR
            for candidate, regexp in _IMPLICIT.get(value[:1], ()):
                if regexp.match(value):
                    tag = candidate
                    break
        if tag == _STR or tag == _TIMESTAMP:  # dates stay strings: configs want the text
            return value
        if tag == _INT and len(value) > MAX_INT_CHARS:
            self.error(f"an integer of {len(value):,} characters is too long (at most {MAX_INT_CHARS})",
                       event, "yaml-value", doc)
            return None
        if tag == _INT and value.isdigit() and (value[0] != "0" or value == "0"):
            return int(value)  # leading zeros are octal in YAML 1.1: left to the constructor
        construct = _CONSTRUCTORS.get(tag)
        if construct is None:
            return value  # unknown local tags (!foo) keep their text
        try:
            return construct(_constructor, ScalarNode(tag, value, event.start_mark, event.end_mark))
        except ConstructorError as exc:
            self.error(f"invalid value: {exc.problem}", event, "yaml-value", doc)
        except Exception:  # e.g. `!!float abc`, `!!bool maybe`: PyYAML raises what its parsing raises
            self.error(f"invalid value for tag {tag}", event, "yaml-value", doc)
        return value
