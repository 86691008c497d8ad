"""Checkpoint selectors without training: the grammar, resolution against a run's metrics and
an evaluation's results, rotation keeping what deployments pin, and validate-time refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundryctl.errors import ManifestError
from foundryctl.kinds.checkpoint import (
    CheckpointInfo,
    CheckpointSelector,
    SelectorError,
    checkpoint_infos,
    observed_evaluation_results,
    parse_selector,
    resolve,
)
from foundryctl.manifest import load_manifest
from foundryctl.training.jobdir import CHECKPOINT_DONE, JobDir

RUN = [CheckpointInfo("epoch-1", 1, 4, {"valid_loss": 1.9, "valid_mean_token_accuracy": 0.52}),
       CheckpointInfo("epoch-2", 2, 8, {"valid_loss": 1.4, "valid_mean_token_accuracy": 0.61}),
       CheckpointInfo("epoch-3", 3, 12, {"valid_loss": 1.6, "valid_mean_token_accuracy": 0.66})]


# -- grammar ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("last", CheckpointSelector(kind="last")),
    ("epoch-2", CheckpointSelector(kind="epoch", number=2)),
    (" step-12 ", CheckpointSelector(kind="step", number=12)),
    ("best(valid_loss)", CheckpointSelector(kind="best", metric="valid_loss", direction="min")),
    ("best( min : valid_loss )", CheckpointSelector(kind="best", metric="valid_loss", direction="min")),
    ("best(max:valid_mean_token_accuracy)",
     CheckpointSelector(kind="best", metric="valid_mean_token_accuracy", direction="max")),
    ("best(Evaluation.held-out.exact_match)",
     CheckpointSelector(kind="best", evaluation="held-out", metric="exact_match", direction="max")),
    ("best(min:Evaluation.held-out.mean_length_tokens)",
     CheckpointSelector(kind="best", evaluation="held-out", metric="mean_length_tokens", direction="min")),
])
def test_parses_each_form(text: str, expected: CheckpointSelector) -> None:
    assert parse_selector(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("epoch-0", "epochs count from 1"),
    ("epoch-two", "write epoch-N or step-N"),
    ("step--1", "write epoch-N or step-N"),
    ("best()", "best() needs a metric"),
    ("best(valid loss)", "is not a metric name"),
    ("best(avg:valid_loss)", "is not a metric name"),
    ("best(Evaluation.x)", "Evaluation.NAME.METRIC"),
    ("best(foo.bar)", "Evaluation.NAME.METRIC"),
    ("final", "is not a checkpoint: use last, epoch-N"),
    ("", "is not a checkpoint"),
])
def test_refuses_what_is_not_a_selector(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    assert message in str(caught.value)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.one_of(
    st.just("last"),
    st.builds(lambda k, n: f"{k}-{n}", st.sampled_from(["epoch", "step"]), st.integers(1, 10_000)),
    st.builds(lambda d, m: f"best({d}{m})", st.sampled_from(["", "min:", "max:"]),
              st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)),
    st.builds(lambda d, e, m: f"best({d}Evaluation.{e}.{m})", st.sampled_from(["", "min:", "max:"]),
              st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
              st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)),
))
def test_the_written_form_reads_back_as_the_same_selector(text: str) -> None:
    selector = parse_selector(text)
    assert parse_selector(str(selector)) == selector
    assert str(parse_selector(str(selector))) == str(selector)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=30))
def test_any_text_parses_or_says_why(text: str) -> None:
    try:
        parse_selector(text)
    except SelectorError as exc:
        assert str(exc)


# -- resolution ---------------------------------------------------------------------------

def test_best_picks_the_lowest_loss_or_the_highest_accuracy() -> None:
    assert resolve(parse_selector("best(valid_loss)"), "agent", RUN) == "epoch-2"
    assert resolve(parse_selector("best(max:valid_mean_token_accuracy)"), "agent", RUN) == "epoch-3"
    assert resolve(parse_selector("best(min:valid_mean_token_accuracy)"), "agent", RUN) == "epoch-1"


def test_ties_go_to_the_earliest_checkpoint() -> None:
    tied = [CheckpointInfo(f"epoch-{n}", n, n, {"valid_loss": 1.0}) for n in (1, 2, 3)]
    assert resolve(parse_selector("best(valid_loss)"), "agent", tied) == "epoch-1"


def test_epoch_step_and_last() -> None:
    assert resolve(parse_selector("epoch-3"), "agent", RUN) == "epoch-3"
    assert resolve(parse_selector("step-8"), "agent", RUN) == "epoch-2"
    assert resolve(parse_selector("last"), "agent", RUN) == "last"


def test_a_missing_checkpoint_names_the_existing_ones() -> None:
    with pytest.raises(SelectorError) as caught:
        resolve(parse_selector("epoch-5"), "agent", RUN)
    assert str(caught.value) == ("FineTuneJob 'agent' has no checkpoint epoch-5 "
                                 "(its checkpoints: epoch-1, epoch-2, epoch-3)")
    with pytest.raises(SelectorError, match="steps 4, 8, 12"):
        resolve(parse_selector("step-5"), "agent", RUN)
    with pytest.raises(SelectorError, match=r"its checkpoints: none"):
        resolve(parse_selector("epoch-1"), "agent", [])


def test_a_metric_no_checkpoint_has_names_the_metrics_there_are() -> None:
    with pytest.raises(SelectorError) as caught:
        resolve(parse_selector("best(valid_f1)"), "agent", RUN)
    assert "no checkpoint of FineTuneJob 'agent' has a 'valid_f1' metric" in str(caught.value)
    assert "metrics: valid_loss, valid_mean_token_accuracy" in str(caught.value)
    assert "need validation data" in str(caught.value)


def test_non_finite_metrics_are_not_candidates() -> None:
    run = [CheckpointInfo("epoch-1", 1, 1, {"valid_loss": float("nan")}),
           CheckpointInfo("epoch-2", 2, 2, {"valid_loss": 2.0})]
    assert resolve(parse_selector("best(valid_loss)"), "agent", run) == "epoch-2"


def test_an_evaluation_without_results_says_so() -> None:
    with pytest.raises(SelectorError) as caught:
        resolve(parse_selector("best(Evaluation.held-out.exact_match)"), "agent", RUN)
    assert str(caught.value) == "Evaluation.held-out has no results for job agent's checkpoints yet"


def test_an_evaluation_picks_by_its_results_through_the_interface() -> None:
    calls = []

    def results(evaluation: str, job: str):
        calls.append((evaluation, job))
        return {"epoch-1": {"exact_match": 0.7}, "epoch-3": {"exact_match": 0.9},
                "epoch-9": {"exact_match": 1.0}}  # a rotated-away checkpoint is no candidate

    assert resolve(parse_selector("best(Evaluation.held-out.exact_match)"), "agent", RUN, results) == "epoch-3"
    assert calls == [("held-out", "agent")]
    with pytest.raises(SelectorError, match="no 'f1_macro'"):
        resolve(parse_selector("best(Evaluation.held-out.f1_macro)"), "agent", RUN, results)


def test_evaluation_results_from_what_the_refresh_saw() -> None:
    class Seen:
        outputs = {"checkpoint_results": {"agent": {"epoch-2": {"exact_match": 0.8}}}}

    results = observed_evaluation_results({"Evaluation.held-out": Seen()})
    assert results("held-out", "agent") == {"epoch-2": {"exact_match": 0.8}}
    assert results("held-out", "other") is None
    assert results("missing", "agent") is None


def test_checkpoint_infos_skip_rows_they_cannot_read() -> None:
    rows = [{"name": "epoch-1", "epoch": 1, "step": 3, "metrics": {"valid_loss": 1.0}}, {"name": "x"}]
    assert checkpoint_infos(rows) == [CheckpointInfo("epoch-1", 1, 3, {"valid_loss": 1.0})]


# -- rotation keeps pinned checkpoints -------------------------------------------------------

def fake_run(path: Path, losses: list[float]) -> JobDir:
    """A job directory with one complete checkpoint and one epoch row per loss."""
    job = JobDir(path)
    job.create()
    for epoch, loss in enumerate(losses, 1):
        checkpoint = job.checkpoints / f"epoch-{epoch}"
        (checkpoint / "adapter").mkdir(parents=True)
        (checkpoint / CHECKPOINT_DONE).write_text(json.dumps({"epoch": epoch, "step": epoch * 4}))
        with open(job.metrics, "a") as out:
            out.write(json.dumps({"type": "epoch", "epoch": epoch, "step": epoch * 4, "valid_loss": loss}) + "\n")
    return job


def names(job: JobDir) -> list[str]:
    return [p.name for p in job.checkpoint_dirs()]


def test_rotation_without_pins_keeps_the_last_ones(tmp_path: Path) -> None:
    job = fake_run(tmp_path / "agent-00000000", [2.0, 1.0, 1.5, 1.7, 1.8])
    job.prune_checkpoints(3)
    assert names(job) == ["epoch-3", "epoch-4", "epoch-5"]


def test_a_pinned_checkpoint_survives_rotation(tmp_path: Path) -> None:
    job = fake_run(tmp_path / "agent-00000000", [2.0, 1.0, 1.5, 1.7, 1.8])
    job.pin("/endpoints/bot", "epoch-1", "epoch-1")
    job.prune_checkpoints(3)
    assert names(job) == ["epoch-1", "epoch-3", "epoch-4", "epoch-5"]
    job.unpin("/endpoints/bot")
    job.prune_checkpoints(3)
    assert names(job) == ["epoch-3", "epoch-4", "epoch-5"]


def test_a_selector_pin_keeps_what_it_picks_as_training_goes(tmp_path: Path) -> None:
    job = fake_run(tmp_path / "agent-00000000", [2.0, 1.0, 1.5, 1.7, 1.8])
    job.pin("/endpoints/bot", None, "best(valid_loss)")
    job.prune_checkpoints(3)
    assert names(job) == ["epoch-2", "epoch-3", "epoch-4", "epoch-5"]  # epoch-2 has the lowest loss


def test_a_retrain_inherits_the_selectors_before_it_trains(tmp_path: Path) -> None:
    old = fake_run(tmp_path / "agent-00000000", [2.0, 1.9])
    old.pin("/endpoints/bot", "epoch-2", "best(valid_loss)")
    new = JobDir(tmp_path / "agent-11111111")
    new.create()
    new.inherit_pins(old)
    assert new.read_pins() == [{"user": "/endpoints/bot", "checkpoint": None, "selector": "best(valid_loss)"}]
    # The new run's own metrics decide: its second epoch is its best, and rotation keeps it.
    for epoch, loss in enumerate([2.5, 0.5, 0.9, 1.1, 1.2], 1):
        checkpoint = new.checkpoints / f"epoch-{epoch}"
        checkpoint.mkdir(parents=True)
        (checkpoint / CHECKPOINT_DONE).write_text(json.dumps({"epoch": epoch, "step": epoch}))
        with open(new.metrics, "a") as out:
            out.write(json.dumps({"type": "epoch", "epoch": epoch, "step": epoch, "valid_loss": loss}) + "\n")
        new.prune_checkpoints(3)  # as the trainer does after each checkpoint
    assert names(new) == ["epoch-2", "epoch-3", "epoch-4", "epoch-5"]


def test_the_checkpoint_table_has_each_epochs_metrics(tmp_path: Path) -> None:
    job = fake_run(tmp_path / "agent-00000000", [2.0, 1.0])
    assert job.checkpoint_table() == [
        {"name": "epoch-1", "epoch": 1, "step": 4, "metrics": {"valid_loss": 2.0}},
        {"name": "epoch-2", "epoch": 2, "step": 8, "metrics": {"valid_loss": 1.0}}]


# -- validate ---------------------------------------------------------------------------------

LOCAL = "backend:\n  type: local\n"
AZURE = ("backend:\n  type: azure\n  subscription_id: 00000000-1111-2222-3333-444444444444\n"
         "  resource_group: rg\n  location: eastus2\n")


def manifest(tmp_path: Path, model: str, *, backend: str = LOCAL, job_extra: str = "") -> Path:
    rows = [json.dumps({"messages": [{"role": "user", "content": f"q {i}"},
                                     {"role": "assistant", "content": f"a {i}"}]}) for i in range(20)]
    (tmp_path / "chat.jsonl").write_text("\n".join(rows) + "\n")
    path = tmp_path / "foundry.yaml"
    path.write_text(f"""version: 1
{backend}resources:
  - {{kind: Hub, name: hub, location: eastus2}}
  - {{kind: Project, name: prj, hub: hub}}
  - {{kind: Dataset, name: chat, project: prj, path: chat.jsonl}}
  - kind: FineTuneJob
    name: agent
    project: prj
    base_model: Phi-4-mini-instruct
    training_data: chat
    hyperparameters:
      epochs: 3
{job_extra}  - kind: Deployment
    name: agent-bot
    project: prj
    model:
{model}""")
    return path


def errors(path: Path) -> list[str]:
    try:
        load_manifest(path)
    except ManifestError as exc:
        return [str(d) for d in exc.diagnostics if d.is_error]
    return []


def test_a_valid_selector_loads_in_its_written_form(tmp_path: Path) -> None:
    path = manifest(tmp_path, "      job: agent\n      checkpoint: best(min:valid_loss)\n")
    loaded = load_manifest(path)
    decl = loaded.resources["Deployment.agent-bot"]
    assert decl.attributes["model"]["checkpoint"] == "best(valid_loss)"
    assert decl.attributes["model"]["resolved"] is None


def test_without_a_checkpoint_the_attributes_are_as_before(tmp_path: Path) -> None:
    decl = load_manifest(manifest(tmp_path, "      job: agent\n")).resources["Deployment.agent-bot"]
    assert set(decl.attributes["model"]) == {"job", "name", "version", "run"}


@pytest.mark.parametrize(("model", "extra", "message"), [
    ("      job: agent\n      checkpoint: epoch-x\n", "", "write epoch-N or step-N"),
    ("      job: agent\n      checkpoint: epoch-4\n", "", "trains 3 epoch(s), so it has no checkpoint epoch-4"),
    ("      job: agent\n      checkpoint: best(Evaluation.held-out.exact_match)\n", "",
     "names Evaluation.held-out, which is not declared in the manifest"),
    ("      name: agent\n      version: 1\n      checkpoint: epoch-1\n", "", "give it with `job`"),
    ("      job: agent\n      checkpoint: epoch-1\n", "      full_finetune: true\n", "is a full fine-tune"),
])
def test_validate_refuses_with_file_and_line(tmp_path: Path, model: str, extra: str, message: str) -> None:
    found = errors(manifest(tmp_path, model, job_extra=extra))
    assert any(message in e for e in found), found
    lines = (tmp_path / "foundry.yaml").read_text().splitlines()
    # The selector's line; a rule about the whole model block points into that block.
    first = next(n for n, line in enumerate(lines, 1) if "model:" in line)
    wanted = range(first, next(n for n, line in enumerate(lines, 1) if "checkpoint:" in line) + 1)
    assert any(f"foundry.yaml:{n}:" in e for n in wanted for e in found), found


def test_the_azure_backend_refuses_intermediate_checkpoints(tmp_path: Path) -> None:
    found = errors(manifest(tmp_path, "      job: agent\n      checkpoint: epoch-2\n", backend=AZURE))
    assert any("cannot be deployed on the azure backend" in e and "Phi-4-mini-instruct" in e
               for e in found), found
    assert errors(manifest(tmp_path, "      job: agent\n      checkpoint: last\n", backend=AZURE)) == []


@settings(max_examples=40, deadline=None, derandomize=True)
@given(losses=st.lists(st.floats(0.1, 5.0), min_size=1, max_size=8), keep=st.integers(1, 4),
       pinned=st.one_of(st.none(), st.integers(1, 8)))
def test_rotation_keeps_the_last_ones_the_best_and_the_pinned(tmp_path_factory, losses, keep, pinned) -> None:
    job = fake_run(tmp_path_factory.mktemp("run") / "agent-00000000", losses)
    job.pin("/endpoints/best", None, "best(valid_loss)")
    if pinned is not None and pinned <= len(losses):
        job.pin("/endpoints/fixed", f"epoch-{pinned}", f"epoch-{pinned}")
    job.prune_checkpoints(keep)
    best = 1 + min(range(len(losses)), key=losses.__getitem__)
    expected = {f"epoch-{n}" for n in range(max(1, len(losses) - keep + 1), len(losses) + 1)}
    expected.add(f"epoch-{best}")
    if pinned is not None and pinned <= len(losses):
        expected.add(f"epoch-{pinned}")
    assert set(names(job)) == expected
