"""One handler per kind for the Azure backend (imported on first use: plan imports only what
the manifest has)."""

HANDLERS: dict[str, str] = {
    "ProviderRegistration": "provider_registration:ProviderRegistrationHandler",
    "Hub": "workspace:HubHandler",
    "Project": "workspace:ProjectHandler",
    "FoundryAccount": "foundry:FoundryAccountHandler",
    "FoundryProject": "foundry:FoundryProjectHandler",
    "RaiPolicy": "rai_policy:RaiPolicyHandler",
    "RoleAssignment": "role_assignment:RoleAssignmentHandler",
    "Dataset": "dataset:DatasetHandler",
    "FineTuneJob": "finetune_job:FineTuneJobHandler",
    "Deployment": "deployment:DeploymentHandler",
    "Evaluation": "evaluation:EvaluationHandler",
    "FoundryDeployment": "foundry_deployment:FoundryDeploymentHandler",
}

__all__ = ["HANDLERS"]
