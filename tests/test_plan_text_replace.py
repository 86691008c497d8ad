"""The text plan warns, where a replaced or destroyed resource is shown, what is lost with it
(the same words as the Markdown plan's "Replacements and deletions that lose state")."""

from __future__ import annotations

from conftest import Project

from foundryctl.plan.model import Action, Mode, Plan, ResourceChange
from foundryctl.plan.render_text import render_plan


def test_a_retrained_job_says_its_model_checkpoints_and_metrics_go() -> None:
    job = ResourceChange("FineTuneJob.agent", "FineTuneJob", "agent", Action.REPLACE,
                         {"output_model": "agent", "hyperparameters": {"epochs": 2}},
                         {"output_model": "agent", "hyperparameters": {"epochs": 3}},
                         reasons=["hyperparameters forces replacement"], create_before_destroy=True)
    text = render_plan(Plan(Mode.NORMAL, [job], [], [], "lineage", 4, {"type": "local"}, "f", {})).plain
    assert ("  # FineTuneJob.agent must be replaced (hyperparameters forces replacement)\n"
            "  # Warning: a new training run; the old fine-tuned model agent, its checkpoints and metrics "
            "are deleted once the new one is trained\n"
            "-/+ FineTuneJob.agent\n") in text


def test_a_destroyed_job_says_the_same() -> None:
    job = ResourceChange("FineTuneJob.agent", "FineTuneJob", "agent", Action.DELETE,
                         {"output_model": "agent"}, None)
    text = render_plan(Plan(Mode.DESTROY, [job], [], [], "lineage", 4, {"type": "local"}, "f", {})).plain
    assert "  # Warning: the fine-tuned model agent, its checkpoints and metrics are deleted\n" in text


def test_a_replaced_hub_in_the_cli_plan_names_what_goes_with_it(project: Project) -> None:
    project.quickstart()
    assert project.cli("apply", "--auto-approve").code == 0
    result = project.cli("plan", "--var", "location=westus3")
    assert result.code == 0, result
    assert ("  # Hub.ft-hub must be replaced (location forces replacement)\n"
            "  # Warning: deleting a hub deletes every project in it and everything they hold: data assets, "
            "fine-tuned models, deployments (Project.xbox-support)\n") in result.stdout
    created = project.cli("plan", "--var", "location=eastus2")
    assert "Warning" not in created.stdout  # nothing is lost when nothing is replaced
