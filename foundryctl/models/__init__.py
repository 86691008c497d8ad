"""Base models: what `base_model:` names and where its files come from, offline.

A base model is a catalog name (`SmolLM2-135M-Instruct`), `hf:ORG/NAME` (a Hugging Face id,
used from the local hub cache unless the runner may download) or `path:DIR` (a directory
in Hugging Face layout). Files derived from a model (a tokenizer converted from GGUF, later
the dequantized weights) live in foundryctl's model cache, made once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from foundryctl import catalog
from foundryctl.suggest import did_you_mean


@dataclass(frozen=True)
class BaseModelRef:
    written: str  # as the manifest or the command line wrote it
    source: Literal["catalog", "hf", "path"]
    name: str  # a display name
    hf_id: str | None = None
    path: Path | None = None
    entry: catalog.BaseModel | None = None

    @property
    def context_length(self) -> int | None:
        """From the catalog, else from a config.json that is on this machine."""
        if self.entry is not None:
            return self.entry.context_length
        config = self._local_config()
        if config is None:
            return None
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = config.get(key)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _local_config(self) -> dict | None:
        candidate: Path | None = None
        if self.path is not None:
            candidate = self.path / "config.json"
        elif self.hf_id is not None:
            from foundryctl.models.files import hub_cached_file

            candidate = hub_cached_file(self.hf_id, "config.json")
        if candidate is None or not candidate.is_file():
            return None
        try:
            return json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def parse_base_model(value: str, root: Path | None = None) -> BaseModelRef:
    """Resolve `base_model:`; raises ValueError naming the catalog when the name is unknown."""
    text = value.strip()
    if text.startswith("hf:"):
        hf_id = text[3:].strip()
        if hf_id.count("/") != 1 or not all(hf_id.split("/")):
            raise ValueError(f"{value!r}: a Hugging Face id is hf:ORG/NAME")
        entry = catalog.find_base_model(hf_id)
        return BaseModelRef(text, "hf", hf_id, hf_id=hf_id, entry=entry)
    if text.startswith("path:"):
        raw = Path(text[5:].strip()).expanduser()
        path = raw if raw.is_absolute() or root is None else root / raw
        return BaseModelRef(text, "path", path.name or str(path), path=path)
    entry = catalog.find_base_model(text)
    if entry is None:
        names = list(catalog.base_models())
        raise ValueError(f"unknown base model {value!r}" + (
            did_you_mean(text, names) or f" (catalog: {', '.join(names)}; or hf:ORG/NAME, path:DIR)"))
    return BaseModelRef(text, "catalog", entry.name, hf_id=entry.hf_id, entry=entry)
