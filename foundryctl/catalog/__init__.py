"""The catalog: data files (not code) of Azure regions, built-in roles, provider namespaces
and base models.

validate, plan and every backend read the same files. Each file names its source and date.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources as _resources
from typing import Any

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Region:
    name: str
    display_name: str
    geography: str


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    id: str
    description: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    # Earlier display names Azure still shows in places (Azure AI User for Foundry User).
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class GgufSource:
    """A GGUF copy of a model inside a PyPI package (found without importing the package)."""

    package: str
    module: str
    file: str


@dataclass(frozen=True)
class BaseModel:
    name: str
    family: str
    hf_id: str
    context_length: int
    learning_rate: float
    lora_target_modules: tuple[str, ...]
    gguf: GgufSource | None = None
    # Azure regions offering serverless fine-tuning / deployment of the model; None: not known
    # (then nothing is checked), never guessed.
    finetune_regions: frozenset[str] | None = None
    deploy_regions: frozenset[str] | None = None
    regions_source: str | None = None
    # The model's asset id in Azure's model catalog (registry), what an Azure fine-tune job
    # names as its base; None: Azure does not fine-tune it.
    azure_model_id: str | None = None
    # The day Azure retired the model for serverless use (None: not retired), and what replaces it.
    retired: _dt.date | None = None
    replacement: str | None = None

    def retired_by(self, day: _dt.date) -> bool:
        return self.retired is not None and self.retired <= day


@dataclass(frozen=True)
class AzureLimits:
    """What limits.yaml says Azure allows (see its comments for each source)."""

    deployments_per_custom_model: int
    tokens_per_minute_per_deployment: int
    requests_per_minute_per_deployment: int
    serverless_source: str
    training_jobs_per_resource: int
    running_jobs_per_resource: int
    queued_jobs_per_resource: int
    fine_tuned_deployments_per_resource: int
    max_training_hours: int
    max_training_tokens: int
    fine_tuning_source: str


@dataclass(frozen=True)
class ProviderCatalog:
    namespaces: frozenset[str]  # lower-cased
    registered_by_default: frozenset[str]  # lower-cased
    canonical: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@cache
def _load(name: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = _resources.files("foundryctl.catalog").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.load(text, Loader=loader)


@cache
def regions() -> dict[str, Region]:
    return {r["name"]: Region(**r) for r in _load("regions.yaml")["regions"]}


def normalize_region(value: str) -> str | None:
    """'East US 2', 'eastus2' and 'EASTUS2' all name eastus2; None when unknown."""
    key = value.replace(" ", "").lower()
    return key if key in regions() else None


@cache
def roles() -> dict[str, RoleDefinition]:
    out = {}
    for r in _load("roles.yaml")["roles"]:
        role = RoleDefinition(
            name=r["name"], id=r["id"], description=r.get("description", ""),
            actions=tuple(r.get("actions", ())), not_actions=tuple(r.get("not_actions", ())),
            data_actions=tuple(r.get("data_actions", ())),
            not_data_actions=tuple(r.get("not_data_actions", ())),
            aliases=tuple(r.get("aliases", ())))
        out[role.name] = role
    return out


def find_role(name_or_id: str) -> RoleDefinition | None:
    """A built-in role by display name (any case) or by its GUID."""
    wanted = name_or_id.strip().lower()
    for role in roles().values():
        if role.name.lower() == wanted or role.id == wanted or wanted in (a.lower() for a in role.aliases):
            return role
    return None


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


@cache
def providers() -> ProviderCatalog:
    data = _load("providers.yaml")
    every = list(data["namespaces"]) + list(data["registered_by_default"])
    return ProviderCatalog(
        namespaces=frozenset(n.lower() for n in every),
        registered_by_default=frozenset(n.lower() for n in data["registered_by_default"]),
        canonical={n.lower(): n for n in every},
    )


@cache
def base_models() -> dict[str, BaseModel]:
    out = {}
    for m in _load("models.yaml")["models"]:
        gguf = GgufSource(**m["gguf"]) if m.get("gguf") else None
        azure = m.get("azure") or {}
        out[m["name"]] = BaseModel(name=m["name"], family=m["family"], hf_id=m["hf_id"],
                                   context_length=int(m["context_length"]),
                                   learning_rate=float(m["learning_rate"]),
                                   lora_target_modules=tuple(m["lora_target_modules"]), gguf=gguf,
                                   finetune_regions=_region_set(azure.get("finetune_regions")),
                                   deploy_regions=_region_set(azure.get("deploy_regions")),
                                   regions_source=azure.get("source"),
                                   azure_model_id=azure.get("model_id"),
                                   retired=_date(azure.get("retired")), replacement=azure.get("replacement"))
    return out


def _date(value: object) -> _dt.date | None:
    if value is None or isinstance(value, _dt.date):
        return value
    return _dt.date.fromisoformat(str(value))


def today() -> _dt.date:
    """The UTC date retirement checks compare with (tests replace this function to pin it)."""
    return _dt.datetime.now(_dt.timezone.utc).date()


# A model retiring within this many days draws a warning on the azure backend.
RETIREMENT_NOTICE_DAYS = 90


@cache
def azure_limits() -> AzureLimits:
    data = _load("limits.yaml")
    serverless, tuning = data["serverless"], data["fine_tuning"]
    return AzureLimits(
        deployments_per_custom_model=int(serverless["deployments_per_custom_model"]),
        tokens_per_minute_per_deployment=int(serverless["tokens_per_minute_per_deployment"]),
        requests_per_minute_per_deployment=int(serverless["requests_per_minute_per_deployment"]),
        serverless_source=serverless["source"],
        training_jobs_per_resource=int(tuning["training_jobs_per_resource"]),
        running_jobs_per_resource=int(tuning["running_jobs_per_resource"]),
        queued_jobs_per_resource=int(tuning["queued_jobs_per_resource"]),
        fine_tuned_deployments_per_resource=int(tuning["fine_tuned_deployments_per_resource"]),
        max_training_hours=int(tuning["max_training_hours"]),
        max_training_tokens=int(tuning["max_training_tokens"]),
        fine_tuning_source=tuning["source"])


def _region_set(values: list[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    found = {normalize_region(v) for v in values}
    if None in found:
        raise ValueError(f"models.yaml names an unknown region in {values}")
    return frozenset(r for r in found if r)


def find_base_model(name: str) -> BaseModel | None:
    """A catalog model by name (any case) or by its Hugging Face id."""
    wanted = name.strip().lower()
    for model in base_models().values():
        if wanted in (model.name.lower(), model.hf_id.lower()):
            return model
    return None


TRAINING_TYPES = ("Standard", "GlobalStandard", "Developer")
# What foundryctl submits (`method.type` of the OpenAI fine-tuning API); Azure's reinforcement
# fine-tuning needs graders foundryctl does not describe.
FOUNDRY_METHODS = ("supervised", "dpo")


@dataclass(frozen=True)
class FoundryTier:
    name: str
    relative_price: tuple[float, float]  # x the Standard price (low, high)
    data_residency: bool
    preemptible: bool = False


@dataclass(frozen=True)
class FoundryModel:
    """A model a Foundry resource fine-tunes (foundry_finetuning.yaml)."""

    name: str
    model_id: str  # what the job's `model` names
    methods: tuple[str, ...]
    standard_regions: frozenset[str]
    tiers: tuple[str, ...]
    training_context_length: int | None
    local_substitute: str
    preview: bool = False
    global_exclusions: frozenset[str] = frozenset()

    def tier_regions(self, tier: str) -> frozenset[str]:
        """Regions of the account that may submit a job of `tier` for this model."""
        if tier not in self.tiers:
            return frozenset()
        if tier == "Standard":
            return self.standard_regions
        return foundry_global_regions() - self.global_exclusions


@cache
def foundry_models() -> dict[str, FoundryModel]:
    data = _load("foundry_finetuning.yaml")
    exclusions = data.get("global_exclusions") or {}
    out = {}
    for m in data["models"]:
        out[m["name"]] = FoundryModel(
            name=m["name"], model_id=m["model_id"], methods=tuple(m["methods"]),
            standard_regions=_region_set(m.get("standard_regions") or []) or frozenset(),
            tiers=tuple(m["tiers"]), training_context_length=m.get("training_context_length"),
            local_substitute=m["local_substitute"], preview=bool(m.get("preview")),
            global_exclusions=_region_set(exclusions.get(m["name"])) or frozenset())
    return out


@cache
def foundry_global_regions() -> frozenset[str]:
    return _region_set(_load("foundry_finetuning.yaml")["global_training_regions"]) or frozenset()


@cache
def foundry_tiers() -> dict[str, FoundryTier]:
    return {name: FoundryTier(name, tuple(t["relative_price"]), bool(t["data_residency"]),  # type: ignore[arg-type]
                              bool(t.get("preemptible")))
            for name, t in _load("foundry_finetuning.yaml")["tiers"].items()}


def foundry_source() -> str:
    return str(_load("foundry_finetuning.yaml")["source"])


def find_foundry_model(name: str) -> FoundryModel | None:
    """A Foundry fine-tuning model by name or versioned id (gpt-4.1 or gpt-4.1-2025-04-14), any case."""
    wanted = name.strip().lower()
    for model in foundry_models().values():
        if wanted in (model.name.lower(), model.model_id.lower()):
            return model
    return None
