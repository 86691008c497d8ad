"""The Evaluation kind without a model: validate-time checks (each naming its line), the run
identity, the lifecycle of stored runs, promotion gates at plan and apply time, the Markdown
plan's gate table, the require_gates policy, and reading evaluation examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from foundryctl.backends.base import Progress
from foundryctl.errors import BackendError, ManifestError
from foundryctl.evaluation import lifecycle
from foundryctl.evaluation.examples import read_cases
from foundryctl.evaluation.predictors import Prediction
from foundryctl.evaluation.run import RunOutcome, Scored
from foundryctl.evaluation.store import EvaluationStore
from foundryctl.kinds.evaluation import Evaluation, run_key
from foundryctl.kinds.gates import admit_promotion, gate_views
from foundryctl.manifest import load_manifest

LOCAL = "backend:\n  type: local\n"
AZURE = ("backend:\n  type: azure\n  subscription_id: 00000000-1111-2222-3333-444444444444\n"
         "  resource_group: rg\n  location: eastus2\n")
EVALUATION = """  - kind: Evaluation
    name: heldout
    project: prj
    target: {job: agent}
    data: chat
    metrics: [rouge_l, exact_match]
    baseline: {base: true, serving: agent-bot}
    gate:
      - rouge_l >= baseline.base + 0.05
"""
DEPLOYMENT = """  - kind: Deployment
    name: agent-bot
    project: prj
    model: {job: agent}
    promote_when: [Evaluation.heldout]
"""


def manifest(tmp_path: Path, evaluation: str = EVALUATION, deployment: str = DEPLOYMENT, *,
             backend: str = LOCAL, extra: str = "", lines: int = 20) -> Path:
    rows = [json.dumps({"messages": [{"role": "user", "content": f"q {i}"},
                                     {"role": "assistant", "content": f"a {i}"}]}) for i in range(lines)]
    (tmp_path / "chat.jsonl").write_text("\n".join(rows) + "\n")
    path = tmp_path / "foundry.yaml"
    path.write_text(f"""version: 1
{backend}resources:
  - {{kind: Hub, name: hub, location: eastus2}}
  - {{kind: Project, name: prj, hub: hub}}
  - {{kind: Dataset, name: chat, project: prj, path: chat.jsonl, validation: {{split: 0.25, seed: 3}}}}
  - kind: FineTuneJob
    name: agent
    project: prj
    base_model: {"Phi-4-mini-instruct" if "azure" in backend else "SmolLM2-135M-Instruct"}
    training_data: chat
{extra}{evaluation}{deployment}""")
    return path


def errors(path: Path) -> list[str]:
    try:
        load_manifest(path)
    except ManifestError as exc:
        return [str(d) for d in exc.diagnostics if d.is_error]
    return []


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# -- validate -----------------------------------------------------------------------------------

def test_a_gated_manifest_loads_and_orders_the_deployment_after_the_evaluation(tmp_path: Path) -> None:
    loaded = load_manifest(manifest(tmp_path))
    assert "Evaluation.heldout" in loaded.graph.dependencies("Deployment.agent-bot")
    assert "FineTuneJob.agent" in loaded.graph.dependencies("Evaluation.heldout")
    # The serving baseline is not an edge: the deployment waits for the evaluation, not the reverse.
    assert "Deployment.agent-bot" not in loaded.graph.dependencies("Evaluation.heldout")
    attributes = loaded.resources["Evaluation.heldout"].attributes
    assert attributes["split"] == "validation" and attributes["task"] == "chat_completion"
    assert attributes["data_file"] == {"path": "chat.jsonl", "holdout": [0.25, 3]}


@pytest.mark.parametrize(("old", "new", "message"), [
    ("metrics: [rouge_l, exact_match]", "metrics: [rouge_l, accuracy]", "accuracy"),
    ("rouge_l >= baseline.base + 0.05", "token_f1 >= 0.5", "needs metric 'token_f1'"),
    ("baseline: {base: true, serving: agent-bot}\n    gate:\n      - rouge_l >= baseline.base + 0.05",
     "baseline: {serving: agent-bot}\n    gate:\n      - rouge_l >= baseline.base + 0.06", "compares with baseline.base"),
    ("rouge_l >= baseline.base + 0.05", "rouge_l >> 0.5", "rouge_l >> 0.5"),
    ("baseline: {base: true, serving: agent-bot}", "baseline: {base: true, serving: nobody}",
     "baseline.serving names Deployment 'nobody'"),
    ("target: {job: agent}", "target: {job: agent, deployment: agent-bot}", "exactly one of"),
])
def test_bad_evaluations_are_refused_at_their_line(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = manifest(tmp_path, EVALUATION.replace(old, new))
    found = errors(path)
    at = new.splitlines()[-1]  # the line the error points at: the field, or the gate condition
    assert any(message in e and f"foundry.yaml:{line_of(path, at)}:" in e for e in found), found


JUDGED = EVALUATION.replace("    metrics: [rouge_l, exact_match]\n", """    metrics:
      - rouge_l
      - exact_match
      - name: judge
        judge:
          deployment: JUDGE
          prompt: "Grade {prediction} against {reference}, 1-5."
""")
JUDGE_DEPLOYMENT = """  - kind: Deployment
    name: judge-bot
    project: prj
    model: {name: SmolLM2-135M-Instruct, version: 1}
"""


def test_a_deployment_of_the_manifest_can_judge_and_is_deployed_first(tmp_path: Path) -> None:
    loaded = load_manifest(manifest(tmp_path, JUDGED.replace("JUDGE", "judge-bot"), DEPLOYMENT + JUDGE_DEPLOYMENT))
    assert "Deployment.judge-bot" in loaded.graph.dependencies("Evaluation.heldout")
    [judge] = [m for m in loaded.resources["Evaluation.heldout"].attributes["metrics"] if m["name"] == "judge"]
    assert judge["judge"]["deployment"] == "judge-bot" and "endpoint" not in judge["judge"]


@pytest.mark.parametrize(("judge", "message"), [
    ("nobody", "the judge names Deployment 'nobody', which the manifest does not declare"),
    ("agent-bot", "Deployment 'agent-bot' cannot judge the evaluation that gates its own promotion"),
])
def test_a_judge_deployment_must_exist_and_not_be_gated_by_it(tmp_path: Path, judge: str, message: str) -> None:
    path = manifest(tmp_path, JUDGED.replace("JUDGE", judge))
    found = errors(path)
    assert any(message in e and f"foundry.yaml:{line_of(path, 'deployment: ' + judge)}:" in e for e in found), found


def test_a_judge_is_an_endpoint_or_a_deployment_never_both(tmp_path: Path) -> None:
    both = JUDGED.replace("deployment: JUDGE", "deployment: judge-bot\n          endpoint: https://judge.example/v1")
    assert any("a judge is either `endpoint: URL`" in e for e in errors(manifest(tmp_path, both)))
    keyed = JUDGED.replace("deployment: JUDGE", "deployment: judge-bot\n          key_env: JUDGE_KEY")
    assert any("leave out `key_env`" in e for e in errors(manifest(tmp_path, keyed, DEPLOYMENT + JUDGE_DEPLOYMENT)))


def test_promote_when_must_name_an_evaluation_of_the_served_model(tmp_path: Path) -> None:
    unknown = manifest(tmp_path, deployment=DEPLOYMENT.replace("Evaluation.heldout", "Evaluation.missing"))
    assert any("Evaluation.missing, which is not declared" in e for e in errors(unknown))
    other = EVALUATION.replace("target: {job: agent}", "target: {base_model: SmolLM2-135M-Instruct}")
    other = other.replace("baseline: {base: true, serving: agent-bot}", "baseline: {serving: agent-bot}")
    other = other.replace("rouge_l >= baseline.base + 0.05", "rouge_l >= 0.1")
    found = errors(manifest(tmp_path, other))
    assert any("says nothing about the model being promoted" in e for e in found), found
    itself = other.replace("target: {base_model: SmolLM2-135M-Instruct}", "target: {deployment: agent-bot}")
    found = errors(manifest(tmp_path, itself))
    assert any("scores this Deployment's own endpoint" in e for e in found), found


def test_azure_scores_only_endpoints_and_has_no_promotion_gates(tmp_path: Path) -> None:
    path = manifest(tmp_path, backend=AZURE)
    found = errors(path)
    assert any("scores a deployed endpoint" in e for e in found), found
    assert any("promotion gates need the new model scored before it serves" in e for e in found), found
    assert any("perplexity and baseline.base need the model's weights" in e for e in found), found
    endpoint = EVALUATION.replace("target: {job: agent}", "target: {deployment: agent-bot}").replace(
        "baseline: {base: true, serving: agent-bot}", "baseline: {}").replace(
        "rouge_l >= baseline.base + 0.05", "rouge_l >= 0.2")
    assert errors(manifest(tmp_path, endpoint, DEPLOYMENT.replace("    promote_when: [Evaluation.heldout]\n", ""),
                           backend=AZURE)) == []


# -- identity -----------------------------------------------------------------------------------

def _attributes(tmp_path: Path, evaluation: str = EVALUATION, **kwargs) -> dict:
    return load_manifest(manifest(tmp_path, evaluation, **kwargs)).resources["Evaluation.heldout"].attributes


def test_the_run_key_follows_target_data_and_metrics_but_not_the_gate(tmp_path: Path) -> None:
    base = run_key(_attributes(tmp_path))
    assert run_key(_attributes(tmp_path)) == base
    assert run_key(_attributes(tmp_path, EVALUATION.replace("rouge_l >= baseline.base + 0.05",
                                                            "rouge_l >= baseline.base + 0.10"))) == base
    assert run_key(_attributes(tmp_path, lines=21)) != base  # new data
    assert run_key(_attributes(tmp_path, EVALUATION.replace("[rouge_l, exact_match]", "[rouge_l]"))) != base
    assert run_key(_attributes(tmp_path, extra="    hyperparameters: {epochs: 2}\n")) != base  # a retrain


def test_plan_notes_say_why_an_evaluation_runs_again(tmp_path: Path) -> None:
    before = _attributes(tmp_path)
    after = _attributes(tmp_path, lines=21)
    assert any("the data changed" in n for n in Evaluation.describe_changes(before, after))
    regated = _attributes(tmp_path, EVALUATION.replace("+ 0.05", "+ 0.01"))
    assert Evaluation.describe_changes(before, regated) == [
        "gate changed: judged again on the stored results (no re-run)"]


# -- lifecycle ----------------------------------------------------------------------------------

def test_stored_results_are_judged_again_without_scoring(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    attributes = _attributes(tmp_path / "m")
    store = EvaluationStore(tmp_path / "store")
    calls = []

    def scorer():
        calls.append(1)
        from foundryctl.evaluation.examples import Case

        cases = [Case(0, [{"role": "user", "content": "q"}], reference="a")]
        return (RunOutcome(Scored({"rouge_l": 0.5, "exact_match": 0.0}, {"rouge_l": [0.5], "exact_match": [0.0]},
                                  [Prediction("a b")], 1.0),
                           {"base": Scored({"rouge_l": 0.2, "exact_match": 0.0}, {}, [Prediction("x")], 1.0)}),
                "agent:1", cases, 0)

    lifecycle.run(store, "heldout", attributes, scorer, Progress())
    observed = lifecycle.observe(store, "id")
    assert observed is not None and observed.outputs["gate"]["passed"] is True
    assert json.loads((store.run_dir(run_key(attributes)) / "examples.jsonl").read_text())["answer"] == "a b"
    stricter = {**attributes, "gate": ["rouge_l >= baseline.base + 0.5"]}
    lifecycle.run(store, "heldout", stricter, scorer, Progress())
    assert calls == [1]  # the same key: judged again, not scored again
    observed = lifecycle.observe(store, "id")
    assert observed.outputs["gate"]["passed"] is False
    assert observed.attributes["gate"] == ["rouge_l >= baseline.base + 0.5"]


# -- gates at plan and apply time ---------------------------------------------------------------

AFTER = {"model": {"job": "agent", "run": "run2"}, "promote_when": ["Evaluation.heldout"]}
BEFORE = {"model": {"job": "agent", "run": "run1"}, "promote_when": ["Evaluation.heldout"]}


def outputs(run: str, passed: bool) -> dict:
    return {"target": {"job": "agent"}, "target_version": run, "values": {"rouge_l": 0.31},
            "baselines": {"serving": {"rouge_l": 0.4}},
            "gate": {"passed": passed, "conditions": [{"condition": "rouge_l >= baseline.serving", "passed": passed,
                                                       "text": "rouge_l 0.31 >= 0.4 (baseline.serving 0.4)"}]}}


def test_apply_promotes_only_a_candidate_whose_own_gate_passed() -> None:
    admit_promotion(BEFORE, AFTER, lambda address: outputs("run2", True))
    with pytest.raises(BackendError, match="failed its gate.*current model keeps serving") as failed:
        admit_promotion(BEFORE, AFTER, lambda address: outputs("run2", False))
    assert failed.value.code == "GateFailed" and "evals show heldout" in (failed.value.hint or "")
    with pytest.raises(BackendError, match="has not scored the new model"):
        admit_promotion(BEFORE, AFTER, lambda address: outputs("run1", True))  # results of the old run
    with pytest.raises(BackendError, match="nothing is deployed"):
        admit_promotion(None, AFTER, lambda address: None)
    # A change that keeps the model (a content filter) is not a promotion: no gate.
    admit_promotion(AFTER, AFTER, lambda address: outputs("run1", False))


def test_plan_views_show_each_gate(tmp_path: Path) -> None:
    from foundryctl.backends.base import Observed
    from foundryctl.plan.model import Action, ResourceChange

    assert gate_views(BEFORE, AFTER, {})[0]["status"] == "not-run"
    views = gate_views(BEFORE, AFTER, {"Evaluation.heldout": Observed("id", {}, outputs("run2", False))})
    assert views[0]["status"] == "failed" and views[0]["baselines"]["serving"]["rouge_l"] == 0.4
    from foundryctl.kinds.gates import gate_notes

    note = gate_notes(views)[0]
    assert "gate FAILED" in note and "-0.09 vs serving" in note
    change = ResourceChange("Deployment.agent-bot", "Deployment", "agent-bot", Action.UPDATE, BEFORE, AFTER,
                            gates=views)
    assert ResourceChange.from_dict(change.to_dict()).gates == views
    from foundryctl.plan.render_markdown import _gates

    class FakePlan:  # only what _gates reads
        pending = [change]

    lines: list[str] = []
    _gates(lines, FakePlan())  # type: ignore[arg-type]
    text = "\n".join(lines)
    assert "### Promotion gates" in text and "baseline.serving" in text and "❌" in text, text
    assert "| `rouge_l` | 0.31 | 0.4 |" in text, text


def test_the_require_gates_policy_refuses_ungated_deployments(tmp_path: Path) -> None:
    path = manifest(tmp_path, extra="", deployment=DEPLOYMENT.replace("    promote_when: [Evaluation.heldout]\n", ""))
    path.write_text(path.read_text().replace("resources:", "policies:\n  require_gates: mandatory\nresources:"))
    from foundryctl.policy import offline_diagnostics

    found = [str(d) for d in offline_diagnostics(load_manifest(path), ()) if d.is_error]
    assert any("must name an evaluation gate" in d and "Deployment.agent-bot" in d for d in found), found
    gated = manifest(tmp_path)
    gated.write_text(gated.read_text().replace("resources:", "policies:\n  require_gates: mandatory\nresources:"))
    assert not [d for d in offline_diagnostics(load_manifest(gated), ()) if d.is_error]


# -- examples -----------------------------------------------------------------------------------

def test_held_out_cases_are_the_datasets_own_validation_split(tmp_path: Path) -> None:
    from foundryctl.datasets import ValidationOptions
    from foundryctl.datasets.cache import report_for
    from foundryctl.datasets.split import write_split

    path = manifest(tmp_path, lines=40).parent / "chat.jsonl"
    report = report_for(path, ValidationOptions(split=(0.25, 3)))
    _, validation = write_split(path, report, tmp_path / "t.jsonl", tmp_path / "v.jsonl")
    held, skipped = read_cases(path, "chat_completion", holdout=(0.25, 3))
    whole, _ = read_cases(tmp_path / "v.jsonl", "chat_completion")
    assert [c.reference for c in held] == [c.reference for c in whole] and len(held) == validation.examples > 0
    assert skipped == 0


def test_cases_need_a_prompt_and_a_reference(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([
        json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                                 {"role": "assistant", "content": "a"}]}),
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        "not json",
        json.dumps({"text": "t", "label": 1}),
    ]) + "\n")
    cases, skipped = read_cases(path, "chat_completion")
    assert [(c.prompt[-1]["content"], c.reference) for c in cases] == [("q", "a")] and skipped == 3
    labelled, skipped = read_cases(path, "text_classification")
    assert [(c.text, c.label) for c in labelled] == [("t", "1")] and skipped == 3
