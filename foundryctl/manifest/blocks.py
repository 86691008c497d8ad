"""Top-level blocks that the loader passes over (`prices:`, `policies:`), read for the modules
that own them: with their source positions and with `${var.…}`/`${env.…}` resolved.

The loader only checks that these keys are allowed; reading them here keeps cost and policy
out of the loader, and a file that has neither key is never parsed a second time.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundryctl.errors import Diagnostic, Position
from foundryctl.manifest.interpolate import Interpolator
from foundryctl.manifest.yamlsource import SourceDocument, load_yaml_documents

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest

BLOCK_KEYS = ("prices", "policies")
# Anywhere in the text, not only at column 0: flow-style documents put keys mid-line. A false
# hit only costs a parse.
_MENTIONS = re.compile(r"\b(prices|policies)[\"']?\s*:")
_CACHE: weakref.WeakKeyDictionary[Any, dict[str, tuple[list[Block], list[Diagnostic]]]] = \
    weakref.WeakKeyDictionary()


@dataclass
class Block:
    """One `key:` block as written in one document, its values interpolated."""

    key: str
    value: Any
    document: SourceDocument

    @property
    def file(self) -> str:
        return self.document.file

    @property
    def directory(self) -> Path:
        """Where paths written in the block resolve from (like a Dataset's `path`)."""
        return Path(self.document.file).parent

    def position(self, path: tuple = ()) -> Position:
        return self.document.position((self.key,) + path)

    def key_position(self, path: tuple) -> Position | None:
        return self.document.key_position((self.key,) + path)


def manifest_blocks(manifest: Manifest, key: str, env: Mapping[str, str] | None = None
                    ) -> tuple[list[Block], list[Diagnostic]]:
    """Every `key:` block of the manifest's files, in file order, and problems reading them."""
    cached = _CACHE.setdefault(manifest, {})
    if key not in cached:
        cached.update(_read(manifest, env if env is not None else os.environ))
    return cached[key]


def file_blocks(path: str | os.PathLike, key: str, variables: Mapping[str, Any],
                env: Mapping[str, str] | None = None, *, whole: bool = True
                ) -> tuple[list[Block], list[Diagnostic]]:
    """Blocks from a file of their own (a policy file): its `key:` mapping or, with `whole`,
    the whole document when it has no such key."""
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Diagnostic.error(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                                     Position(str(path), 1, 1), code="io")]
    documents, problems = load_yaml_documents(text, str(path))
    blocks: list[Block] = []
    interpolator = Interpolator(variables, env if env is not None else os.environ, problems)
    for doc in documents:
        if isinstance(doc.data, dict) and key in doc.data:
            blocks.append(_resolved(Block(key, doc.data[key], doc), interpolator))
        elif whole:
            # The whole document is the block: wrap it so positions keep working.
            wrapped = SourceDocument(doc.file, {key: doc.data},
                                     {(key,) + p: v for p, v in doc.positions.items()},
                                     {(key,) + p: v for p, v in doc.key_positions.items()})
            blocks.append(_resolved(Block(key, doc.data, wrapped), interpolator))
    return blocks, problems


def _read(manifest: Manifest, env: Mapping[str, str]) -> dict[str, tuple[list[Block], list[Diagnostic]]]:
    found: dict[str, tuple[list[Block], list[Diagnostic]]] = {k: ([], []) for k in BLOCK_KEYS}
    for name in manifest.files:
        try:
            text = Path(name).read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            continue  # the loader already reported it
        if not _MENTIONS.search(text):
            continue  # the common case: no second parse
        documents, _ = load_yaml_documents(text, name)  # syntax errors: reported by the loader
        for doc in documents:
            if not isinstance(doc.data, dict):
                continue
            for key in BLOCK_KEYS:
                if key in doc.data and doc.data[key] is not None:
                    blocks, problems = found[key]
                    interpolator = Interpolator(manifest.variables, env, problems)
                    blocks.append(_resolved(Block(key, doc.data[key], doc), interpolator))
    return found


def _resolved(block: Block, interpolator: Interpolator) -> Block:
    block.value = interpolator.resolve(block.value, block.position)
    return block
