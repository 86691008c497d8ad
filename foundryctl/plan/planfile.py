"""Saved plans: `plan --out FILE` writes one, `apply FILE` applies exactly it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from foundryctl.errors import PlanError
from foundryctl.plan.model import FORMAT_VERSION, Plan

MAGIC = "foundryctl-plan"


def save_plan(plan: Plan, path: str | os.PathLike) -> None:
    """Write the plan (0600: it names every resource and its settings).

    Sensitive values are not in it (plans are kept as CI artifacts): each is a salted hash,
    and `--var` values of sensitive variables are left out. Applying the plan needs them
    again (--var, a var file or the environment); the manifest fingerprint, which covers
    their hashes, proves they are the values the plan was made with.
    """
    document = {"kind": MAGIC, **plan.to_dict(include_source=True, stored=True)}
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1, sort_keys=True)
    os.replace(temporary, target)  # never a half-written plan


def load_plan(path: str | os.PathLike) -> Plan:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"plan file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f"{path} is not a foundryctl plan file ({exc})") from None
    if not isinstance(document, dict) or document.get("kind") != MAGIC:
        raise PlanError(f"{path} is not a foundryctl plan file")
    if document.get("format_version") != str(FORMAT_VERSION):
        raise PlanError(f"{path} has plan format {document.get('format_version')}; this foundryctl "
                        f"reads format {FORMAT_VERSION}", hint="make the plan again with this version")
    try:
        return Plan.from_dict(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{path} is a damaged plan file ({exc!r})") from None
