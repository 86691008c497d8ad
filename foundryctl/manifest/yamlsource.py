"""YAML to plain Python values, remembering where every value came from.

We build dicts, lists and scalars straight from libyaml's event stream (each event has a
start mark) and keep a side table from value path to (line, column), so that any later
error (pydantic's `loc`, a dangling reference, a cycle) can name file:line:column. Building
from events rather than PyYAML's node tree is about five times faster on large manifests.
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


def load_yaml_documents(text: str, file: str) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Parse every document in `text`; syntax errors come back as diagnostics."""
    diagnostics: list[Diagnostic] = []
    builder = _Builder(file, yaml.parse(text, Loader=_Loader), diagnostics)
    try:
        documents = builder.documents()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return [], [Diagnostic.error(f"YAML syntax error: {problem}", position, code="yaml-syntax")]
    except yaml.YAMLError as exc:
        return [], [Diagnostic.error(f"YAML error: {exc}", Position(file, 1, 1), code="yaml-syntax")]
    return documents, diagnostics


class _Builder:
    def __init__(self, file: str, events: Iterator[Event], diagnostics: list[Diagnostic]):
        self.file = file
        self.events = events
        self.diagnostics = diagnostics
        self.anchors: dict[str, Any] = {}

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

    def error(self, message: str, event: Event, code: str) -> None:
        mark = event.start_mark
        self.diagnostics.append(Diagnostic.error(message, Position(self.file, mark.line + 1, mark.column + 1),
                                                 code=code))

    def value(self, event: Event, path: Path, doc: SourceDocument) -> Any:
        mark = event.start_mark
        doc.positions[path] = (mark.line + 1, mark.column + 1)
        kind = type(event)
        if kind is ScalarEvent:
            result = self.scalar(event)
        elif kind is MappingStartEvent:
            result = self.mapping(path, doc)
        elif kind is SequenceStartEvent:
            result = self.sequence(path, doc)
        elif kind is AliasEvent:
            if event.anchor not in self.anchors:
                self.error(f"unknown alias *{event.anchor}", event, "yaml-syntax")
                return None
            return self.anchors[event.anchor]
        else:  # pragma: no cover - libyaml emits nothing else here
            raise yaml.YAMLError(f"unexpected {kind.__name__}")
        anchor = getattr(event, "anchor", None)
        if anchor:
            self.anchors[anchor] = result
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

    def scalar(self, event: ScalarEvent) -> Any:
        value = event.value
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
        if tag == _INT and value.isdigit() and (value[0] != "0" or value == "0"):
            return int(value)  # leading zeros are octal in YAML 1.1: left to the constructor
        construct = _CONSTRUCTORS.get(tag)
        if construct is None:
            return value  # unknown local tags (!foo) keep their text
        try:
            return construct(_constructor, ScalarNode(tag, value, event.start_mark, event.end_mark))
        except ConstructorError as exc:
            self.error(f"invalid value: {exc.problem}", event, "yaml-value")
            return value
