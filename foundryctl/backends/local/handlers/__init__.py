"""One handler per kind for the local backend."""

from foundryctl.backends.local.handlers.provider_registration import (
                                ProviderRegistrationHandler,
)
from foundryctl.backends.local.handlers.dataset import DatasetHandler
from foundryctl.backends.local.handlers.deployment import DeploymentHandler
from foundryctl.backends.local.handlers.evaluation import EvaluationHandler
from foundryctl.backends.local.handlers.finetune_job import FineTuneJobHandler
from foundryctl.backends.local.handlers.foundry import FoundryAccountHandler, FoundryProjectHandler
from foundryctl.backends.local.handlers.foundry_deployment import FoundryDeploymentHandler
from foundryctl.backends.local.handlers.rai_policy import RaiPolicyHandler
from foundryctl.backends.local.handlers.role_assignment import RoleAssignmentHandler
from foundryctl.backends.local.handlers.workspace import HubHandler, ProjectHandler

HANDLERS = {h.kind: h for h in (ProviderRegistrationHandler, HubHandler, ProjectHandler,
                                FoundryAccountHandler, FoundryProjectHandler, RaiPolicyHandler,
                                RoleAssignmentHandler, DatasetHandler, FineTuneJobHandler,
                                DeploymentHandler, EvaluationHandler, FoundryDeploymentHandler)}

__all__ = ["HANDLERS"]
