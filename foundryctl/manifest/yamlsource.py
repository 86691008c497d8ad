"""YAML to plain Python values, remembering where every value came from.

PyYAML's composer gives each node a start mark; we build ordinary dicts, lists and scalars
from the node tree and keep a side table from value path to position, so that any later
error (pydantic's `loc`, a dangling reference, a cycle) can name file:line:column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from foundryctl.errors import Diagnostic, Position

try:  # libyaml makes composing about 10x faster; PyYAML wheels ship it
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"

_constructor = SafeConstructor()


@dataclass
class SourceDocument:
    """One YAML document: its values and the position of each value and mapping key."""

    file: str
    data: Any
    positions: dict[Path, Position] = field(default_factory=dict)
    key_positions: dict[Path, Position] = field(default_factory=dict)

    def position(self, path: Path) -> Position:
        """Position of the value at `path`, or of its nearest ancestor that has one."""
        while path:
            found = self.positions.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.positions.get((), Position(self.file, 1, 1))


def load_yaml_documents(text: str, file: str) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Parse every document in `text`; syntax errors come back as diagnostics."""
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(file, mark.line + 1, mark.column + 1) if mark else Position(file, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return [], [Diagnostic.error(f"YAML syntax error: {problem}", position, code="yaml-syntax")]
    except yaml.YAMLError as exc:
        return [], [Diagnostic.error(f"YAML error: {exc}", Position(file, 1, 1), code="yaml-syntax")]

    documents: list[SourceDocument] = []
    diagnostics: list[Diagnostic] = []
    for node in nodes:
        if node is None:
            continue
        doc = SourceDocument(file=file, data=None)
        doc.data = _Builder(doc, diagnostics).build(node, ())
        documents.append(doc)
    return documents, diagnostics


class _Builder:
    def __init__(self, doc: SourceDocument, diagnostics: list[Diagnostic]):
        self.doc = doc
        self.diagnostics = diagnostics
        self.file = doc.file

    def _pos(self, node: Node) -> Position:
        mark = node.start_mark
        return Position(self.file, mark.line + 1, mark.column + 1)

    def build(self, node: Node, path: Path) -> Any:
        self.doc.positions[path] = self._pos(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        return None  # pragma: no cover - PyYAML has no other node types

    def _mapping(self, node: MappingNode, path: Path) -> dict:
        if any(key.tag == _MERGE for key, _ in node.value):
            try:  # resolve `<<: *anchor` merge keys the way PyYAML's loader does
                _constructor.flatten_mapping(node)
            except ConstructorError as exc:
                self.diagnostics.append(Diagnostic.error(
                    f"invalid merge key: {exc.problem}", self._pos(node), code="yaml-syntax"))
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.diagnostics.append(Diagnostic.error(
                    "mapping keys must be plain strings", self._pos(key_node), code="yaml-key"))
                continue
            key = key_node.value
            key_path = path + (key,)
            if key in out:
                first = self.doc.key_positions[key_path]
                self.diagnostics.append(Diagnostic.error(
                    f"duplicate key {key!r} (first defined at line {first.line})",
                    self._pos(key_node), code="duplicate-key"))
                continue
            self.doc.key_positions[key_path] = self._pos(key_node)
            out[key] = self.build(value_node, key_path)
        return out

    def _scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR or tag == _TIMESTAMP:  # dates stay strings: configs want the text
            return node.value
        if tag == _INT and node.value.isdigit():
            return int(node.value)
        construct = SafeConstructor.yaml_constructors.get(tag)
        if construct is not None:
            try:
                return construct(_constructor, node)
            except ConstructorError as exc:
                self.diagnostics.append(Diagnostic.error(
                    f"invalid value: {exc.problem}", self._pos(node), code="yaml-value"))
                return node.value
        return node.value  # unknown local tags (!foo) keep their text
