"""The Dataset kind end to end through the real CLI on the local backend: validation inside
validate and plan, content-hash versions, uploads that happen once, retained versions, splits,
RBAC, and `foundryctl data validate`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import DATA, Project

from foundryctl.backends import arm

DATASET = """
  - kind: Dataset
    name: xbox-chat
    project: xbox-support
    path: data/train.jsonl
    validation: {validation}
    description: Xbox support conversations
"""


def write_examples(path: Path, count: int, start: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        for i in range(start, start + count):
            out.write(json.dumps({"messages": [
                {"role": "system", "content": "You are an Xbox support agent."},
                {"role": "user", "content": f"Question {i}: my controller keeps disconnecting."},
                {"role": "assistant", "content": f"Answer {i}: update its firmware in Settings."},
            ]}) + "\n")
    return path


def dataset_project(project: Project, validation: str = "{split: 0.1, seed: 7}", examples: int = 60) -> Path:
    project.quickstart()
    # The acting principal is the one the quickstart gives the role to.
    project.edit("  type: local\n", "  type: local\n  principal: ${var.principal}\n")
    with open(project.manifest, "a") as manifest:
        manifest.write(DATASET.format(validation=validation))
    return write_examples(project.root / "data" / "train.jsonl", examples)


def data_container(project: Project, name: str = "xbox-chat"):
    cloud = project.cloud()
    try:
        workspace = arm.workspace_id(cloud.default_subscription_id, "foundryctl-local", "xbox-support")
        container_id = arm.data_id(workspace, name)
        return cloud.get(container_id), {v.name: v for v in cloud.data_versions(container_id)}
    finally:
        cloud.close()


def blobs(project: Project) -> dict[str, int]:
    """Stored blob name -> inode: an upload writes a new file, so the inode tells."""
    root = project.cloud_path / "datastores"
    return {p.name: p.stat().st_ino for p in root.rglob("*.jsonl")} if root.exists() else {}


def test_create_noop_reapply_and_new_version(project: Project) -> None:
    train = dataset_project(project)
    assert project.cli("validate").code == 0

    created = project.cli("apply", "--auto-approve")
    assert created.code == 0, created
    assert "Dataset.xbox-chat: uploaded xbox-chat (" in created.stdout
    assert "54 examples" in created.stdout and "6 examples" in created.stdout
    container, versions = data_container(project)
    assert container is not None and len(versions) == 1
    (version,) = versions.values()
    assert version.properties["examples"] == 54
    stored = blobs(project)
    assert len(stored) == 2  # training part and validation part

    # Nothing changed: no plan, and nothing uploaded on a re-apply.
    assert project.cli("plan", "--detailed-exitcode").code == 0
    again = project.cli("apply", "--auto-approve")
    assert again.code == 0 and "uploaded" not in again.stdout
    assert blobs(project) == stored

    # An edit is an in-place update to a new version, explained in the user's terms.
    write_examples(train, 5, start=1000)
    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.code == 2, plan
    assert "Dataset.xbox-chat will be updated in place (content changed: 60 -> 65 examples)" in plan.stdout
    assert "~ examples" in plan.stdout and "~ version" in plan.stdout
    updated = project.cli("apply", "--auto-approve")
    assert updated.code == 0, updated
    _, versions = data_container(project)
    assert len(versions) == 1 and version.name not in versions  # nothing uses the old one
    assert [v.properties["examples"] for v in versions.values()] == [65 - 6]  # round(0.1 * 65) held out
    show = project.cli("state", "show", "Dataset.xbox-chat")
    assert show.code == 0 and "retained_versions = []" in show.stdout


def test_a_version_in_use_is_retained_until_released(project: Project) -> None:
    train = dataset_project(project)
    assert project.cli("apply", "--auto-approve").code == 0
    _, versions = data_container(project)
    (first,) = versions.values()
    cloud = project.cloud()
    job = first.id.split("/data/")[0] + "/jobs/ft-job-1"
    cloud.add_reference(job, first.id)  # a fine-tune job trained on this version
    cloud.close()

    write_examples(train, 3, start=500)
    assert project.cli("apply", "--auto-approve").code == 0
    _, versions = data_container(project)
    assert first.name in versions and len(versions) == 2
    show = project.cli("state", "show", "Dataset.xbox-chat")
    assert first.name in show.stdout.split("retained_versions")[1].splitlines()[0]

    destroy = project.cli("destroy", "--auto-approve", "--target", "Dataset.xbox-chat")
    assert destroy.code == 1 and "is used by" in destroy.output and "ft-job-1" in destroy.output

    cloud = project.cloud()
    cloud.remove_references(job)
    cloud.close()
    write_examples(train, 1, start=900)
    assert project.cli("apply", "--auto-approve").code == 0
    _, versions = data_container(project)
    assert len(versions) == 1 and first.name not in versions


def test_split_is_deterministic_and_follows_the_seed(project: Project) -> None:
    dataset_project(project, examples=100)
    assert project.cli("apply", "--auto-approve").code == 0
    _, held_out = data_container(project, "xbox-chat-validation")
    (first,) = held_out.values()
    assert first.properties["examples"] == 10

    # Same file and seed in another stack: byte-identical parts, so the same versions.
    other = Project(project.root / "other")
    other.root.mkdir()
    other.quickstart()
    other.edit("  type: local\n", "  type: local\n  principal: ${var.principal}\n")
    with open(other.manifest, "a") as manifest:
        manifest.write(DATASET.format(validation="{split: 0.1, seed: 7}"))
    (other.root / "data").mkdir()
    (other.root / "data" / "train.jsonl").write_bytes((project.root / "data" / "train.jsonl").read_bytes())
    assert other.cli("apply", "--auto-approve").code == 0
    assert set(data_container(other, "xbox-chat-validation")[1]) == {first.name}

    project.edit("seed: 7", "seed: 8")
    plan = project.cli("plan")
    assert "~ validation.seed = 7 -> 8" in plan.stdout and "(validation split changed)" in plan.stdout
    assert project.cli("apply", "--auto-approve").code == 0
    _, held_out = data_container(project, "xbox-chat-validation")
    assert set(held_out) != {first.name} and len(held_out) == 1


def test_validation_file_and_missing_files(project: Project) -> None:
    dataset_project(project, validation="{path: data/valid.jsonl}")
    missing = project.cli("validate")
    assert missing.code == 1
    assert "no such file: data/valid.jsonl" in missing.stderr
    assert "foundry.yaml:" in missing.stderr  # points at the manifest line that names it

    write_examples(project.root / "data" / "valid.jsonl", 4, start=100)
    assert project.cli("apply", "--auto-approve").code == 0
    _, validation = data_container(project, "xbox-chat-validation")
    assert [v.properties["examples"] for v in validation.values()] == [4]
    _, training = data_container(project)
    assert [v.properties["examples"] for v in training.values()] == [60]

    write_examples(project.root / "data" / "valid.jsonl", 1, start=200)
    plan = project.cli("plan")
    assert "validation content changed: 4 -> 5 examples" in plan.stdout


def test_invalid_data_fails_validate_and_plan_before_anything_is_applied(project: Project) -> None:
    train = dataset_project(project)
    with open(train, "a", encoding="utf-8") as out:
        out.write('{"messages": [{"role": "user", "content": "hi"}, {"role": "asistant", "content": "yo"}]}\n')
        out.write("not json\n")
    result = project.cli("validate")
    assert result.code == 1
    assert "data/train.jsonl:61:1: error: Dataset.xbox-chat: message 2 has role 'asistant'; " \
           "did you mean 'assistant'? [unrecognized_role]" in result.stderr
    assert "data/train.jsonl:62:1: error" in result.stderr and "[data_type]" in result.stderr

    as_json = json.loads(project.cli("validate", "--format", "json").stdout)
    codes = {(d.get("file"), d.get("line"), d["code"]) for d in as_json["diagnostics"]}
    assert ("data/train.jsonl", 61, "unrecognized_role") in codes
    assert ("data/train.jsonl", 62, "data_type") in codes

    plan = project.cli("plan")
    assert plan.code == 1 and "[unrecognized_role]" in plan.stderr
    assert project.cloud_ids() == set()  # nothing was created


def test_a_file_edited_after_a_saved_plan_is_refused(project: Project) -> None:
    train = dataset_project(project)
    assert project.cli("plan", "--out", "tfplan").code == 0
    write_examples(train, 1, start=300)
    refused = project.cli("apply", "tfplan")
    assert refused.code == 1 and "changed since the plan was made" in refused.stderr
    assert project.cloud_ids() == set()


def test_datasets_need_a_role_on_the_project(project: Project) -> None:
    dataset_project(project)
    project.edit("    principal: ${var.principal}", "    principal: someone-else@contoso.com")
    failed = project.cli("apply", "--auto-approve")
    assert failed.code == 1
    assert "AuthorizationFailed" in failed.output and "Azure AI Developer" in failed.output
    assert "Microsoft.MachineLearningServices/workspaces/data/versions/write" in failed.output
    # Everything else was applied; only the dataset is missing.
    assert project.state_rows().keys() >= {"Hub.ft-hub", "Project.xbox-support"}
    assert project.state_rows().get("Dataset.xbox-chat") != "ready"
    _, versions = data_container(project)
    assert versions == {}


def test_the_dataset_waits_for_the_role_assignment_that_covers_it(project: Project) -> None:
    dataset_project(project)
    graph = project.cli("graph")
    assert '"Dataset.xbox-chat" -> "RoleAssignment.ml-engineer"' in graph.stdout


def test_destroy_removes_assets_and_blobs(project: Project) -> None:
    dataset_project(project)
    assert project.cli("apply", "--auto-approve").code == 0
    assert blobs(project)
    assert project.cli("destroy", "--auto-approve").code == 0
    assert blobs(project) == {}
    assert project.cloud_ids() == set()


def test_deleting_the_project_takes_its_data_along(project: Project) -> None:
    dataset_project(project)
    assert project.cli("apply", "--auto-approve").code == 0
    cloud = project.cloud()
    workspace = arm.workspace_id(cloud.default_subscription_id, "foundryctl-local", "xbox-support")
    cloud.delete_workspace(workspace)  # in the portal, behind foundryctl's back
    assert cloud.data_versions(arm.data_id(workspace, "xbox-chat")) == []
    cloud.close()
    assert blobs(project) == {}
    plan = project.cli("plan")
    assert "+ Dataset.xbox-chat" in plan.stdout and "+ Project.xbox-support" in plan.stdout


# -- foundryctl data validate ---------------------------------------------------------------

def test_data_validate_text_and_exit_status(tmp_path: Path, project: Project) -> None:
    cookbook = DATA / "datasets" / "openai_cookbook_toy_chat.jsonl"
    result = project.cli_plain("data", "validate", str(cookbook), "--base-model",
                               "Phi-3-mini-4k-instruct", "--epochs", "3")
    assert result.code == 1, result
    out = result.stdout
    assert f"{cookbook}:3: warning: no system message [example_missing_system_message]" in out
    assert f"{cookbook}:4: warning: no user message [example_missing_user_message]" in out
    assert f"{cookbook}:5: warning: about 6,532 tokens, over the 4,096-token context" in out
    assert "[too_few_examples]" in out and "Azure requires at least 10" in out
    assert "tokens (approximate)" in out and "x 3 epoch(s)" in out
    assert "Invalid: 1 error(s), 3 warning(s)" in out

    good = write_examples(tmp_path / "good.jsonl", 60)
    ok = project.cli_plain("data", "validate", str(good), "--split", "0.1", "--seed", "3")
    assert ok.code == 0, ok
    assert "Valid (0 warning(s))" in ok.stdout and "54 training, 6 validation" in ok.stdout


def test_data_validate_json(tmp_path: Path, project: Project) -> None:
    seed = DATA / "datasets" / "xbox_support_seed.jsonl"
    result = project.cli_plain("data", "validate", str(seed), "--format", "json")
    assert result.code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["examples"] == 3
    assert report["counts"] == {"too_few_examples": 1}
    assert report["statistics"]["messages_per_example"]["median"] == 3
    assert report["statistics"]["tokens_exact"] is False


def test_data_validate_exact_tokens_with_smollm2(project: Project, smollm2_counter) -> None:
    cookbook = DATA / "datasets" / "openai_cookbook_toy_chat.jsonl"
    result = project.cli_plain("data", "validate", str(cookbook), "--base-model", "SmolLM2-135M-Instruct",
                               "--context-length", "4096", "--format", "json",
                               env={"FOUNDRYCTL_CACHE_DIR": os.environ["FOUNDRYCTL_CACHE_DIR"]})
    report = json.loads(result.stdout)
    assert report["statistics"]["tokens_exact"] is True
    assert report["statistics"]["token_counting"] == "exact (SmolLM2-135M-Instruct tokenizer)"
    over = [p for p in report["problems"] if p["category"] == "over_context_length"]
    assert [p["line"] for p in over] == [5] and "about" not in over[0]["message"]


def test_data_validate_rejects_unknown_models_and_missing_files(project: Project) -> None:
    unknown = project.cli_plain("data", "validate", str(DATA / "datasets" / "xbox_support_seed.jsonl"),
                                "--base-model", "Phi-3-mini-4k-instruckt")
    assert unknown.code != 0 and "did you mean 'Phi-3-mini-4k-instruct'" in unknown.stderr
    missing = project.cli_plain("data", "validate", "nope.jsonl")
    assert missing.code == 1 and "cannot read nope.jsonl" in missing.stderr


def test_description_and_path_changes_settle_without_a_new_version(project: Project) -> None:
    train = dataset_project(project)
    assert project.cli("apply", "--auto-approve").code == 0
    stored = blobs(project)
    project.edit("description: Xbox support conversations", "description: renamed")
    train.rename(train.with_name("moved.jsonl"))
    project.edit("path: data/train.jsonl", "path: data/moved.jsonl")
    plan = project.cli("plan")
    assert "~ description" in plan.stdout and "~ path" in plan.stdout and "~ version" not in plan.stdout
    updated = project.cli("apply", "--auto-approve")
    assert updated.code == 0 and "nothing uploaded" in updated.stdout
    assert project.cli("plan", "--detailed-exitcode").code == 0  # it settled
    assert blobs(project) == stored


def test_destroy_and_state_work_when_the_data_file_is_gone_or_broken(project: Project) -> None:
    train = dataset_project(project)
    assert project.cli("apply", "--auto-approve").code == 0
    train.write_text("not json\n")
    assert project.cli("plan").code == 1  # creating or updating needs valid data...
    assert project.cli("state", "list").code == 0  # ...inspecting and refreshing do not
    assert project.cli("plan", "--refresh-only").code == 0
    train.unlink()
    assert project.cli("graph").code == 0
    destroyed = project.cli("destroy", "--auto-approve")
    assert destroyed.code == 0, destroyed
    assert project.cloud_ids() == set() and blobs(project) == {}


def test_a_dataset_named_like_another_ones_validation_asset_is_refused(project: Project) -> None:
    dataset_project(project)
    with open(project.manifest, "a") as manifest:
        manifest.write(DATASET.replace("name: xbox-chat", "name: xbox-chat-validation")
                       .format(validation="null"))
    result = project.cli("validate")
    assert result.code == 1
    assert "Dataset.xbox-chat-validation" in result.stderr and "rename one of the two" in result.stderr


def test_applies_from_different_directories_share_one_store(project: Project) -> None:
    """Stored paths are absolute, so pruning works whatever the working directory."""
    train = dataset_project(project)
    from conftest import run_cli

    assert run_cli("apply", "--auto-approve", "-f", f"{project.root.name}/foundry.yaml",
                   cwd=project.root.parent).code == 0
    first = set(blobs(project))
    write_examples(train, 2, start=700)
    assert project.cli("apply", "--auto-approve").code == 0
    _, versions = data_container(project)
    assert len(versions) == 1
    stored = set(blobs(project))
    assert len(stored) == 2 and stored != first  # the old training blob went with its version


def test_a_renamed_dataset_keeps_its_shared_blob(project: Project) -> None:
    """Renaming registers the same bytes under a new name while the old name is deleted, in
    parallel: the content both versions point at must survive."""
    dataset_project(project)
    project.edit("  api_latency: 0.0", "  api_latency: 0.05")
    assert project.cli("apply", "--auto-approve").code == 0
    project.edit("name: xbox-chat", "name: xbox-chat2")
    assert project.cli("apply", "--auto-approve").code == 0
    _, versions = data_container(project, "xbox-chat2")
    (version,) = versions.values()
    assert Path(version.properties["localPath"]).is_file()
    assert project.cli("plan", "--detailed-exitcode").code == 0


def outside_root_project(project: Project, path: str, extra: str = "") -> None:
    dataset_project(project)
    project.edit("    path: data/train.jsonl\n", f"    path: {path}\n{extra}")


def test_data_files_outside_the_manifest_directory_are_refused(project: Project, tmp_path: Path) -> None:
    """../, absolute paths and symlinks leading out are errors at the path, and nothing of the
    file is read or quoted."""
    secret = project.root.parent / "secret.env"
    secret.write_text("API_KEY=hunter2\nroot:x:0:0:root:/root:/bin/bash\n")
    (project.root / "data").mkdir(exist_ok=True)
    (project.root / "data" / "link.jsonl").symlink_to(secret)
    for written in ("../secret.env", str(secret), "data/link.jsonl"):
        outside_root_project(project, written)
        result = project.cli("validate")
        assert result.code == 1, result
        assert "hunter2" not in result.stdout + result.stderr and "root:x" not in result.stderr
        assert f"error: Dataset.xbox-chat: the data file '{written}' is outside the manifest's directory" \
               in result.stderr
        assert "allow_outside_root: true" in result.stderr  # the hint names the opt-in
        as_json = json.loads(project.cli("validate", "--format", "json").stdout)
        (refused,) = [d for d in as_json["diagnostics"] if d["code"] == "path-outside-root"]
        assert refused["file"] == "foundry.yaml" and refused["address"] == "Dataset.xbox-chat"
        assert project.cli("plan").code == 1


def test_allow_outside_root_reads_the_file_but_never_quotes_it(project: Project) -> None:
    """With the opt-in the file is validated; a file that is not JSONL is reported by line
    without its content (no source lines from data files, user text printed literally)."""
    secret = project.root.parent / "passwd"
    secret.write_text("".join(f"user{i}:x:0:0:root:/root:/bin/bash\n" for i in range(12)))
    outside_root_project(project, str(secret), "    allow_outside_root: true\n")
    result = project.cli("validate")
    assert result.code == 1
    assert f"{secret}:1:1: error: Dataset.xbox-chat: not valid JSON" in result.stderr
    assert ":x:0:0" not in result.stderr and "❌" not in result.stderr
    manifest = project.cli("validate", "--format", "json")
    assert "user0" not in manifest.stdout


def test_allow_outside_root_is_not_an_attribute(project: Project) -> None:
    """Turning the opt-in on changes how the manifest is checked, not what is registered."""
    dataset_project(project)
    assert project.cli("apply", "--auto-approve").code == 0
    project.edit("    path: data/train.jsonl\n", "    path: data/train.jsonl\n    allow_outside_root: true\n")
    assert project.cli("plan", "--detailed-exitcode").code == 0
