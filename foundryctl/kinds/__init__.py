"""The kind registry. Adding a kind: one module here plus one handler per backend."""

from __future__ import annotations

from foundryctl.kinds.base import META_FIELDS, Kind, Ref, Reference, Spec, parse_address
from foundryctl.kinds.dataset import Dataset
from foundryctl.kinds.deployment import Deployment
from foundryctl.kinds.evaluation import Evaluation
from foundryctl.kinds.finetune_job import FineTuneJob
from foundryctl.kinds.foundry import FoundryAccount, FoundryProject
from foundryctl.kinds.foundry_deployment import FoundryDeployment
from foundryctl.kinds.hub import Hub
from foundryctl.kinds.project import Project
from foundryctl.kinds.provider_registration import ProviderRegistration
from foundryctl.kinds.rai_policy import RaiPolicy
from foundryctl.kinds.role_assignment import RoleAssignment

KINDS: dict[str, type[Kind]] = {}


def register(kind: type[Kind]) -> type[Kind]:
    KINDS[kind.name] = kind
    return kind


for _kind in (ProviderRegistration, Hub, Project, FoundryAccount, FoundryProject, RaiPolicy, RoleAssignment,
              Dataset, FineTuneJob, Deployment, FoundryDeployment, Evaluation):
    register(_kind)


def get_kind(name: str) -> type[Kind] | None:
    return KINDS.get(name)


__all__ = ["KINDS", "META_FIELDS", "Kind", "Ref", "Reference", "Spec", "get_kind", "parse_address", "register"]
