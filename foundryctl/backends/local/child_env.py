"""The environment of the processes the local backend starts (trainers, model servers).

They outlive apply and run a model on user data, so they get only what they need to find
Python, the model cache and the GPUs, never apply's credentials (AZURE_CLIENT_SECRET, storage
connection strings, tokens): an allow-list, then a deny-list for secrets that share a prefix
(HF_TOKEN under HF_, NCCL_AUTH_KEY under NCCL_).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

# Names passed as they are: the interpreter and its search path, locale, temporary files,
# the user's home (the default model cache is under it) and dynamic libraries (CUDA's).
ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "PYTHONPATH", "PYTHONHOME", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
    "PYTHONWARNINGS", "PYTHONFAULTHANDLER", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "XDG_CACHE_HOME",
    "TOKENIZERS_PARALLELISM", "FOUNDRYCTL_CACHE_DIR",  # the only FOUNDRYCTL_ name the runners read
    # A server with `classifier: azure` calls Azure AI Content Safety, through the proxy and
    # with the CA bundle the machine is set up with.
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
})

# Families read by the runners and the libraries under them: locale (LC_*), GPU selection
# and the CUDA runtime (CUDA_VISIBLE_DEVICES, NVIDIA_*), torch and torchrun's multi-GPU rendezvous and collectives (TORCH_*, TORCHELASTIC_*,
# PYTORCH_*, NCCL_*, GLOO_*, MASTER_ADDR/PORT), CPU threading (OMP_*, MKL_*, OPENBLAS_*,
# KMP_*), and Hugging Face's cache and offline switches (HF_*, TRANSFORMERS_*).
ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "TORCH_", "TORCHELASTIC_",
                    "TORCHINDUCTOR_", "PYTORCH_", "NCCL_", "GLOO_", "MASTER_", "OMP_", "MKL_",
                    "OPENBLAS_", "KMP_", "HF_", "TRANSFORMERS_")

# Within those families, names that hold a credential are still left out (HF_TOKEN: the
# model cache is filled by apply itself, so the children never download).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|CONNECTION_STRING|(^|_)KEY($|_)|"
                          r"(^|_)SAS($|_)|AUTH", re.IGNORECASE)


def allowed(name: str) -> bool:
    """Whether a child process may inherit the environment variable `name`."""
    if _SECRET_NAME.search(name):
        return False
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def child_environment(parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a trainer or model server: the allowed part of `parent` (apply's)."""
    source = os.environ if parent is None else parent
    return {name: value for name, value in source.items() if allowed(name)}


def child_process_options() -> dict[str, Any]:
    """Popen arguments for a trainer or model server: the allowed environment, and a umask
    that keeps what it writes (checkpoints, metrics, status) to its owner."""
    return {"env": child_environment(), "umask": 0o077}
