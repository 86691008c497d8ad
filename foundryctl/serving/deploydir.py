"""A deployment's directory: what its server process reads and writes.

    config.json   what to serve (model, adapter, filter, port), as last served healthily: the
                  server rewrites it after a successful reload or start
    config.pending.json  what apply asks a (re)starting server to serve; it becomes config.json
                  once the server answers, and is discarded if it never does
    filter.key    the Azure AI Content Safety key, when that classifier is used (mode 0600)
    keys.json     the two API keys (mode 0600; never copied into state, plans or logs)
    admin.token   the secret apply uses for /admin/reload (mode 0600)
    status.json   pid, port, state (Starting, Ready, Stopped, Failed), model being served
    server.log    the server's log

The directory is 0700 and every file in it 0600: the log has prompts and the config names the
model files (foundryctl.private_files).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from foundryctl.private_files import open_private_append, private_directory, write_private

KEY_NAMES = ("key1", "key2")


@dataclass
class ServerConfig:
    deployment: str  # the endpoint's name: what clients pass as `model`
    model_dir: str  # plain HF weights (the base, or merged weights)
    adapter_dir: str | None  # LoRA adapter merged in at load
    model_id: str  # the registered model version served (for /v1/models and lineage)
    port: int
    content_filter: dict[str, Any] = field(default_factory=dict)
    max_batch_size: int = 16
    device: str = "auto"
    checkpoint: str | None = None  # the job's checkpoint served (epoch-N), None for its final model

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def same_model(self, other: ServerConfig) -> bool:
        return (self.model_dir, self.adapter_dir, self.device, self.max_batch_size) == (
            other.model_dir, other.adapter_dir, other.device, other.max_batch_size)


def key_fingerprint(key: str) -> str:
    """What may be shown of a key: a short hash, never the key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


class DeploymentDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def pending_file(self) -> Path:
        return self.path / "config.pending.json"

    @property
    def filter_key_file(self) -> Path:
        return self.path / "filter.key"

    @property
    def keys_file(self) -> Path:
        return self.path / "keys.json"

    @property
    def admin_file(self) -> Path:
        return self.path / "admin.token"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def log(self) -> Path:
        return self.path / "server.log"

    def open_log(self) -> BinaryIO:
        """The server log, for appending (0600, in the 0700 directory)."""
        private_directory(self.path)
        return open_private_append(self.log)

    # -- config ------------------------------------------------------------------------------

    def read_config(self) -> ServerConfig | None:
        try:
            return ServerConfig.from_dict(json.loads(self.config_file.read_text()))
        except (OSError, ValueError):
            return None

    def write_config(self, config: ServerConfig) -> None:
        _write_atomic(self.config_file, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")

    def write_pending(self, config: ServerConfig) -> None:
        _write_atomic(self.pending_file, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")

    def read_pending(self) -> ServerConfig | None:
        try:
            return ServerConfig.from_dict(json.loads(self.pending_file.read_text()))
        except (OSError, ValueError):
            return None

    def promote_pending(self) -> None:
        """The pending config served healthily: it is what a restart serves from now on."""
        if self.pending_file.exists():
            os.replace(self.pending_file, self.config_file)

    def discard_pending(self) -> None:
        self.pending_file.unlink(missing_ok=True)

    def write_filter_key(self, key: str | None) -> None:
        if key is None:
            self.filter_key_file.unlink(missing_ok=True)
        else:
            _write_atomic(self.filter_key_file, key)

    def filter_key(self) -> str | None:
        try:
            return self.filter_key_file.read_text().strip() or None
        except OSError:
            return None

    # -- secrets -----------------------------------------------------------------------------

    def ensure_secrets(self) -> None:
        """Keys and the admin token, made once (kept across restarts and model changes)."""
        private_directory(self.path)
        if not self.keys_file.exists():
            _write_atomic(self.keys_file, json.dumps({n: _new_key() for n in KEY_NAMES}) + "\n")
        if not self.admin_file.exists():
            _write_atomic(self.admin_file, secrets.token_urlsafe(32))

    def keys(self) -> dict[str, str]:
        return json.loads(self.keys_file.read_text())

    def regenerate(self, which: str) -> str:
        if which not in KEY_NAMES:
            raise ValueError(f"key must be one of {', '.join(KEY_NAMES)}, not {which!r}")
        keys = self.keys()
        keys[which] = _new_key()
        _write_atomic(self.keys_file, json.dumps(keys) + "\n")
        return keys[which]

    def admin_token(self) -> str:
        return self.admin_file.read_text().strip()

    # -- status ------------------------------------------------------------------------------

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def write_status(self, **changes: Any) -> None:
        status = {**self.read_status(), **changes}
        _write_atomic(self.status_file, json.dumps(status, indent=2, sort_keys=True) + "\n")


def _new_key() -> str:
    return secrets.token_hex(32)  # 256 bits, hex like Azure's keys


def _write_atomic(path: Path, text: str) -> None:
    private_directory(path.parent)
    write_private(path, text)
