"""Cost in the plan, policies (built-in and custom), and `plan --format markdown`, through the
real CLI on the local backend (nothing here trains: plans only, and applies of kinds that are
quick to create)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import Project, require

from foundryctl.plan import Action, Mode, Plan, ResourceChange, load_plan, save_plan

# Ten conversations whose approximate token counts are easy to do by hand. The approximate
# counter (the Phi tokenizers are not on the machine; no network is used) counts
# ceil(characters / 4) per message content, plus 3 tokens per message and 3 per conversation:
#   system "Be brief."       9 characters -> 3 tokens
#   user "Question 00?"     12 characters -> 3 tokens
#   assistant "Answer 00."  10 characters -> 3 tokens
#   framing: 3 messages x 3 + 3       -> 12 tokens
# = 21 tokens per example, 210 per epoch for 10 examples (all under any context).
TOKENS_PER_EXAMPLE = 21
BILLED_PER_EPOCH = 10 * TOKENS_PER_EXAMPLE

MANIFEST = """\
version: 1
variables:
  location: eastus2
  base_model: Phi-3-mini-4k-instruct
  epochs: 3
  filter: true
  protect: false
resources:
  - {{kind: ProviderRegistration, name: network, namespace: Microsoft.Network}}
  - {{kind: Hub, name: ft-hub, location: "${{var.location}}"}}
  - {{kind: Project, name: support, hub: ft-hub}}
  - {{kind: RoleAssignment, name: me, principal: me, role: Azure AI Developer, scope: {{project: support}}}}
  - {{kind: Dataset, name: chat, project: support, path: data/train.jsonl}}
  - kind: FineTuneJob
    name: agent
    project: support
    base_model: ${{var.base_model}}
    training_data: chat
    hyperparameters: {{epochs: "${{var.epochs}}"{hyper}}}
  - kind: Deployment
    name: agent
    project: support
    protect: ${{var.protect}}
    model: {{job: agent}}
    content_filter: {{enabled: "${{var.filter}}"}}
{extra}"""


def write_project(project: Project, extra: str = "", hyper: str = "") -> None:
    data = project.root / "data"
    data.mkdir(exist_ok=True)
    rows = [{"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": f"Question {i:02d}?"},
                          {"role": "assistant", "content": f"Answer {i:02d}."}]} for i in range(10)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    project.manifest.write_text(MANIFEST.format(extra=textwrap.dedent(extra), hyper=hyper))


def approximate_counts(project: Project) -> None:
    """The hand-computed figures assume the approximate counter; check `data validate` agrees."""
    report = project.cli_plain("data", "validate", "data/train.jsonl", "--base-model",
                               "Phi-3-mini-4k-instruct", "--format", "json")
    stats = json.loads(report.stdout)["statistics"]
    if stats["tokens_exact"]:
        require("Phi-3's tokenizer is on this machine, so counts are exact, not the hand-computed ones")
    assert stats["billed_tokens_per_epoch"] == BILLED_PER_EPOCH


def plan_json(project: Project, *args: str) -> dict:
    result = project.cli("plan", "--json", *args)
    assert result.code == 0, result
    return json.loads(result.stdout)


def cost_lines(document: dict) -> dict[str, dict]:
    return {line["address"]: line for line in document["cost"]["lines"]}


# -- cost ---------------------------------------------------------------------------------

def test_training_cost_is_billed_tokens_times_epochs_times_price(project: Project) -> None:
    write_project(project, """\
        prices:
          source: test price sheet
          as_of: "2026-11"
          models:
            Phi-3-mini-4k-instruct: {training_per_1k_tokens: 2.0, hosting_per_hour: 0.8}
        """)
    approximate_counts(project)
    document = plan_json(project)
    training = cost_lines(document)["FineTuneJob.agent"]
    # 210 tokens x 3 epochs = 630 billed tokens; 630 / 1000 x $2.00 = $1.26.
    assert training["quantity"]["billed_tokens_per_epoch"] == 210
    assert training["quantity"]["billed_tokens"] == 630
    assert training["status"] == "priced" and training["amount"] == pytest.approx(1.26)
    assert training["price"] == {"amount": 2.0, "unit": "1K training tokens", "currency": "USD",
                                 "origin": "manifest", "source": "test price sheet", "as_of": "2026-11"}
    assert training["note"].startswith("local runner: est. ")  # the job kind's estimate, reused
    hosting = cost_lines(document)["Deployment.agent"]
    assert hosting["amount"] == pytest.approx(0.8) and hosting["per"] == "hour"
    assert document["cost"]["totals"] == {"USD": {"once": pytest.approx(1.26),
                                                  "per_hour": pytest.approx(0.8)}}

    text = project.cli("plan")
    assert text.code == 0, text
    assert "Cost estimate:" in text.stdout
    assert ("~630 billed tokens (~210 x 3 epoch(s)) x $2.00/1K training tokens = ~$1.26"
            in text.stdout)
    assert "price: manifest, test price sheet, as of 2026-11" in text.stdout
    assert "Total: training ~$1.26; hosting $0.80/hour" in text.stdout


def test_billed_tokens_count_at_most_the_context_per_example(project: Project) -> None:
    # max_seq_length 16 < 21 tokens: each example bills 16, so 160 per epoch;
    # x 2 epochs = 320 tokens; at $0.50 per 1K = $0.16.
    write_project(project, """\
        prices:
          models:
            Phi-3-mini-4k-instruct: {training_per_1k_tokens: 0.5}
        """, hyper=", max_seq_length: 16")
    approximate_counts(project)
    training = cost_lines(plan_json(project, "--var", "epochs=2"))["FineTuneJob.agent"]
    assert training["quantity"]["billed_tokens_per_epoch"] == 160
    assert training["quantity"]["billed_tokens"] == 320
    assert training["amount"] == pytest.approx(0.16)


def test_a_price_that_is_not_known_is_unknown(project: Project) -> None:
    write_project(project)
    document = plan_json(project)
    lines = cost_lines(document)
    # The local runner is billed by nobody: its estimated duration stands in for a price.
    assert lines["FineTuneJob.agent"]["status"] == "local"
    assert lines["FineTuneJob.agent"]["amount"] is None
    assert lines["FineTuneJob.agent"]["note"].startswith("local runner: est. ")
    # No price for hosting a fine-tuned Phi-3 anywhere: unknown, not a number.
    assert lines["Deployment.agent"]["status"] == "unknown"
    assert lines["Deployment.agent"]["amount"] is None
    assert document["cost"]["totals"] == {}
    assert document["cost"]["unknown"] == {"once": [], "per_hour": ["Deployment.agent"]}
    assert document["cost"]["total_text"] == "training none billed (local runner); hosting unknown"

    text = project.cli("plan").stdout
    assert ("Deployment.agent   hosting   unknown per hour  "
            "(no hosting price for Phi-3-mini-4k-instruct)") in text
    assert "Total: training none billed (local runner); hosting unknown" in text

    # One known price and one unknown: the total says "+ unknown".
    project.manifest.write_text(project.manifest.read_text() + textwrap.dedent("""\
        prices:
          resources:
            FineTuneJob.agent: {training_per_1k_tokens: 1.0}
          models:
            Phi-3-mini-4k-instruct: {hosting_per_hour: 0.25}
        """))
    project.manifest.write_text(project.manifest.read_text().replace(
        "  - kind: Deployment\n", "  - kind: Deployment\n    name: second\n    project: support\n"
        "    model: {name: other-model, version: 1}\n  - kind: Deployment\n", 1))
    document = plan_json(project)
    lines = cost_lines(document)
    assert lines["Deployment.agent"]["amount"] == pytest.approx(0.25)
    assert lines["Deployment.second"]["status"] == "unknown"
    assert "base model of the served model is not known" in lines["Deployment.second"]["note"]
    assert document["cost"]["total_text"] == "training ~$0.63; hosting $0.25/hour + unknown"


def test_the_catalog_records_no_price_without_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from foundryctl import catalog
    from foundryctl.cost.prices import catalog_prices

    for name, price in catalog_prices().items():  # what ships (none today)
        assert price.source.startswith("https://") and price.as_of, name
    real = catalog._load

    def with_prices(prices: dict):
        def load(name: str):
            data = real(name)
            if name != "models.yaml":
                return data
            return {**data, "models": [{**m, "prices": prices} if m["name"] == "Phi-4-mini-instruct" else m
                                       for m in data["models"]]}
        return load

    try:
        catalog_prices.cache_clear()
        monkeypatch.setattr(catalog, "_load", with_prices({"training_per_1k_tokens": 1.0}))
        with pytest.raises(ValueError, match="Phi-4-mini-instruct has no source and as_of date"):
            catalog_prices()
        monkeypatch.setattr(catalog, "_load", with_prices({"training_per_1k_tokens": 1.0, "as_of": "2026-11",
                                                            "source": "https://azure.microsoft.com/pricing"}))
        catalog_prices.cache_clear()
        assert catalog_prices()["phi-4-mini-instruct"].training_per_1k_tokens == 1.0
    finally:
        catalog_prices.cache_clear()  # the next test sees the real catalog


def test_price_lookup_order() -> None:
    from foundryctl.cost.prices import CatalogPrice, PriceBook, PriceEntry, PricesBlock

    listed = CatalogPrice(3.0, 1.5, "USD", "https://example.com/azure-prices", "2026-11")
    block = PricesBlock(currency="EUR", models={"Phi-4-mini-instruct": PriceEntry(hosting_per_hour=0.9)},
                        resources={"Deployment.b": PriceEntry(hosting_per_hour=0.7)})
    book = PriceBook(block, {"phi-4-mini-instruct": block.models["Phi-4-mini-instruct"]},
                     {"phi-4-mini-instruct": listed})
    # The resource's own price, then the manifest's price of the model, then the catalog's.
    assert book.hosting("Deployment.b", "Phi-4-mini-instruct").amount == 0.7
    assert book.hosting("Deployment.a", "hf:microsoft/Phi-4-mini-instruct").amount == 0.9
    from_catalog = book.training("FineTuneJob.a", "Phi-4-mini-instruct")
    assert (from_catalog.amount, from_catalog.origin, from_catalog.currency) == (3.0, "catalog", "USD")
    # Azure's list price does not price a run on this machine.
    assert book.training("FineTuneJob.a", "Phi-4-mini-instruct", use_catalog=False) is None
    assert PriceBook(catalog={}).hosting("Deployment.a", "Phi-4-mini-instruct") is None


def test_price_block_errors_are_reported_by_validate(project: Project) -> None:
    write_project(project, """\
        prices:
          models:
            Phi-3-mini-4k-instruct: {training_per_1k_token: 2}
          resources:
            Deployment.nope: {hosting_per_hour: 1}
        """)
    result = project.cli("validate")
    assert result.code == 1
    assert "foundry.yaml:28:30: error: unknown key 'training_per_1k_token'" in result.stderr
    project.edit("training_per_1k_token:", "training_per_1k_tokens:")
    result = project.cli("validate")
    assert result.code == 0, result
    assert "warning: prices.resources: no resource Deployment.nope in the manifest" in result.stderr


# -- policies -----------------------------------------------------------------------------

# rule -> (the rule in a policy file, --var that violates it, the resource and message named)
RULES = {
    "content_filter": ("content_filter: {enforcement: ENF}", "filter=false",
                       "Deployment.agent", "content filtering is turned off"),
    "allowed_regions": ("allowed_regions: {regions: [eastus2, East US], enforcement: ENF}",
                        "location=westus3", "Hub.ft-hub", "region westus3 is not allowed"),
    "allowed_base_models": ("allowed_base_models: {models: ['Phi-3*'], enforcement: ENF}",
                            "base_model=Phi-4-mini-instruct", "FineTuneJob.agent",
                            "base model Phi-4-mini-instruct is not allowed"),
    "max_epochs": ("max_epochs: {max: 3, enforcement: ENF}", "epochs=4", "FineTuneJob.agent",
                   "4 epochs, over the limit of 3"),
    "require_protect": ("require_protect: ENF", "protect=false", "Deployment.agent",
                        "a deployment must have `protect: true`"),
}
COMPLIANT = ["--var", "protect=true"]


@pytest.mark.parametrize("rule", list(RULES))
def test_built_in_rule(project: Project, rule: str) -> None:
    declaration, violating, address, message = RULES[rule]
    write_project(project)
    policy = project.root / "policies" / "policy.yaml"
    policy.parent.mkdir()

    policy.write_text(declaration.replace("ENF", "mandatory") + "\n")
    passed = project.cli("plan", "--policy-file", "policies/policy.yaml", *COMPLIANT)
    assert passed.code == 0, passed
    assert f"[pass] {rule} (mandatory)" in passed.stdout

    mandatory = ["--policy-file", "policies/policy.yaml", *COMPLIANT, "--var", violating]
    validated = project.cli("validate", *mandatory)
    assert validated.code == 1, validated
    assert f"error: {address}: policy {rule} (mandatory): {message}" in validated.stderr
    assert "foundry.yaml:" in validated.stderr  # at the resource's line

    failed = project.cli("plan", "--detailed-exitcode", *mandatory)
    assert failed.code == 1, failed
    assert f"[FAIL] {rule} (mandatory)" in failed.stdout
    assert f"Error: 1 mandatory policy violation(s): {rule} ({address})" in failed.stderr
    applied = project.cli("apply", "--auto-approve", *mandatory)
    assert applied.code == 1 and f"{rule} ({address})" in applied.stderr
    assert project.state_rows() == {}  # refused before anything was created

    policy.write_text(declaration.replace("ENF", "advisory") + "\n")
    warned = project.cli("plan", "--detailed-exitcode", *mandatory)
    assert warned.code == 2, warned  # changes present, no error
    assert f"[WARN] {rule} (advisory)" in warned.stdout and message in warned.stdout
    checked = project.cli("validate", *mandatory)
    assert checked.code == 0 and f"warning: {address}: policy {rule} (advisory): {message}" in checked.stderr


def test_max_cost(project: Project) -> None:
    write_project(project, """\
        prices:
          models:
            Phi-3-mini-4k-instruct: {training_per_1k_tokens: 2.0}
        policies:
          max_cost: {training: 1.00}
        """)
    approximate_counts(project)
    assert project.cli("validate").code == 0  # the cost needs a plan
    over = project.cli("plan")
    assert over.code == 1
    assert "estimated training cost $1.26 is over the limit of $1.00 (FineTuneJob.agent $1.26)" in over.stdout
    assert "max_cost (FineTuneJob.agent)" in over.stderr
    assert project.cli("plan", "--var", "epochs=1").code == 0  # 210 tokens: $0.42

    # An unknown cost cannot be shown to be under a limit, unless the rule allows it.
    project.edit("max_cost: {training: 1.00}", "max_cost: {hosting_per_hour: 5}")
    unknown = project.cli("plan")
    assert unknown.code == 1
    assert "the hosting cost is unknown (no hosting price for Phi-3-mini-4k-instruct)" in unknown.stdout
    project.edit("max_cost: {hosting_per_hour: 5}", "max_cost: {hosting_per_hour: 5, allow_unknown: true}")
    assert project.cli("plan").code == 0


def test_a_policy_files_cost_limit_does_not_trust_the_manifests_own_prices(project: Project) -> None:
    write_project(project, """\
        prices:
          models:
            Phi-3-mini-4k-instruct: {training_per_1k_tokens: 0.0001}
        """)
    approximate_counts(project)
    policy = project.root / "policies" / "org.yaml"
    policy.parent.mkdir()
    policy.write_text("max_cost: {training: 1.00}\n")
    result = project.cli("plan", "--policy-file", "policies/org.yaml", *COMPLIANT)
    assert result.code == 1, result
    assert "priced by the manifest itself, which a policy file's limit does not trust" in result.stdout
    # The same limit in the manifest's own block takes the manifest's prices.
    with open(project.manifest, "a") as manifest:
        manifest.write("policies:\n  max_cost: {training: 1.00}\n")
    assert project.cli("plan", *COMPLIANT).code == 0


RULES_PY = '''\
from pathlib import Path

Path("imported.txt").write_text("the module ran")  # shows whether validate ran it


def no_big_bang(plan, manifest):
    """At most five resources created at once."""
    creates = [c for c in plan.changes if c.action == "create"]
    if len(creates) > 5:
        return f"{len(creates)} resources created at once (at most 5)"


def deployments_serve_jobs(plan, manifest):
    return [(c.address, "serves a model no job of this manifest trains")
            for c in plan.of_kind("Deployment") if c.after and not c.after["model"].get("job")]


def tries_to_edit(plan, manifest):
    plan.changes[0].after["location"] = "nowhere"


def crashes(plan, manifest):
    return 1 / 0
'''


def test_custom_rules(project: Project) -> None:
    write_project(project, """\
        policies:
          custom:
            - {module: rules/team.py, function: deployments_serve_jobs}
            - {module: rules/team.py, function: no_big_bang, enforcement: advisory}
        """)
    (project.root / "rules").mkdir()
    (project.root / "rules" / "team.py").write_text(RULES_PY)

    validated = project.cli("validate")
    assert validated.code == 0, validated
    assert not (project.root / "imported.txt").exists()  # validate parses rules, never runs them

    planned = project.cli("plan", "--detailed-exitcode")
    assert planned.code == 2, planned
    assert "[pass] custom:deployments_serve_jobs (mandatory)" in planned.stdout
    assert "[WARN] custom:no_big_bang (advisory)" in planned.stdout
    assert "7 resources created at once (at most 5)" in planned.stdout

    project.edit("model: {job: agent}", "model: {name: agent, version: 1}")
    failed = project.cli("plan")
    assert failed.code == 1
    assert "Deployment.agent: serves a model no job of this manifest trains" in failed.stdout
    assert "custom:deployments_serve_jobs (Deployment.agent)" in failed.stderr

    # A rule cannot change the plan it judges, and a rule that fails does not pass.
    project.edit("function: no_big_bang, enforcement: advisory", "function: tries_to_edit")
    edited = project.cli("plan", "--json")
    assert edited.code == 1
    results = {r["rule"]: r for r in json.loads(edited.stdout)["policy_results"]}
    assert results["custom:tries_to_edit"]["status"] == "fail"
    assert "does not support item assignment" in results["custom:tries_to_edit"]["violations"][0]["message"]
    project.edit("function: tries_to_edit", "function: crashes")
    assert "the rule failed: ZeroDivisionError" in project.cli("plan").stdout

    project.edit("function: crashes", "function: not_there")
    missing = project.cli("validate")
    assert missing.code == 1
    assert "rules/team.py defines no function not_there" in missing.stderr


def test_policy_block_errors_name_the_line(project: Project) -> None:
    write_project(project, """\
        policies:
          max_epoch: 3
          allowed_regions: [mars]
        """)
    result = project.cli("validate")
    assert result.code == 1
    assert "unknown key 'max_epoch'; did you mean 'max_epochs'?" in result.stderr
    assert "unknown Azure region 'mars'" in result.stderr
    assert "missing.yaml" in project.cli("validate", "--policy-file", "missing.yaml").stderr


def test_a_saved_plan_is_checked_again_when_applied(project: Project) -> None:
    project.quickstart()
    assert project.cli("plan", "--out", "tfplan").code == 0
    policy = project.root / "policies" / "regions.yaml"
    policy.parent.mkdir()
    policy.write_text("allowed_regions: [swedencentral]\n")

    refused = project.cli("apply", "tfplan", "--policy-file", "policies/regions.yaml")
    assert refused.code == 1, refused
    assert "allowed_regions (Hub.ft-hub)" in refused.stderr
    assert project.state_rows() == {}

    # A policy added to the manifest after the plan was saved counts too.
    project.manifest.write_text(project.manifest.read_text()
                                + "policies:\n  allowed_regions: {regions: [westus3]}\n")
    refused = project.cli("apply", "tfplan")
    assert refused.code == 1 and "allowed_regions (Hub.ft-hub)" in refused.stderr
    project.edit("regions: [westus3]", "regions: [eastus2]")
    applied = project.cli("apply", "tfplan")
    assert applied.code == 0, applied

    # Policy files given to `plan` are recorded in the saved plan and checked again at apply.
    project.edit("description: Fine-tuning hub", "description: v2")
    assert project.cli("plan", "--out", "second", "--policy-file", "policies/regions.yaml").code == 1
    policy.write_text("allowed_regions: [eastus2]\n")
    assert project.cli("plan", "--out", "second", "--policy-file", "policies/regions.yaml").code == 0
    policy.write_text("allowed_regions: [swedencentral]\n")
    refused = project.cli("apply", "second")
    assert refused.code == 1 and "allowed_regions (Hub.ft-hub)" in refused.stderr


# -- markdown -----------------------------------------------------------------------------

def test_markdown_plan_is_a_pull_request_comment(project: Project) -> None:
    write_project(project, """\
        prices:
          source: https://example.com/price-sheet
          as_of: "2026-11"
          models:
            Phi-3-mini-4k-instruct: {training_per_1k_tokens: 2.0}
        policies:
          content_filter: advisory
          max_epochs: 5
        """)
    result = project.cli("plan", "--format", "markdown", "--var", "filter=false")
    assert result.code == 0, result
    md = result.stdout
    assert md.startswith("## foundryctl plan: 7 to add, 0 to change, 0 to destroy\n")
    assert "### Summary\n\n| | Action | Resource | Kind | Notes |\n|:-:|---|---|---|---|\n" in md
    assert "| `+` | create | `Hub.ft-hub` | Hub |  |" in md
    assert ("| `+` | create | `FineTuneJob.agent` | FineTuneJob | new training run: ~210 tokens x 3 "
            "epoch(s), est.") in md
    assert md.count("<details><summary>") == 7 and md.count("</details>") == 7
    assert md.count("```diff\n") == 7
    assert '<code>+ Hub.ft-hub</code> will be created' in md
    assert '+   location    = "eastus2"' in md
    assert "### Cost estimate" in md
    assert ("| `FineTuneJob.agent` | training | ~630 billed tokens (~210 x 3 epoch(s)) x $2.00/1K "
            "training tokens = ~$1.26") in md
    assert "[manifest](https://example.com/price-sheet), as of 2026-11 |" in md
    assert ("| `Deployment.agent` | hosting | **unknown** (no hosting price for "
            "Phi-3-mini-4k-instruct) | — |") in md
    assert "**Total: training ~$1.26; hosting unknown**" in md
    assert "### Policies" in md
    assert ("| ⚠️ | `content_filter` | advisory | `Deployment.agent` | content filtering is "
            "turned off") in md
    assert "| ✅ | `max_epochs` | mandatory | — | at most 5 epoch(s) per fine-tune job |" in md
    assert "[!CAUTION]" not in md
    # --json is --format json; the two cannot disagree.
    assert json.loads(project.cli("plan", "--format", "json").stdout)["summary"]["add"] == 7
    conflict = project.cli("plan", "--json", "--format", "markdown")
    assert conflict.code == 1 and "cannot be combined" in conflict.stderr


def test_markdown_warns_about_replacements_that_lose_state(project: Project) -> None:
    project.quickstart()
    assert project.cli("apply", "--auto-approve").code == 0
    result = project.cli("plan", "--format", "markdown", "--var", "location=westus3")
    assert result.code == 0, result
    md = result.stdout
    assert md.startswith("## foundryctl plan: 3 to add, 0 to change, 3 to destroy\n")
    assert "### ⚠️ Replacements and deletions that lose state" in md
    assert ("- `Hub.ft-hub` is replaced: deleting a hub deletes every project in it and everything "
            "they hold: data assets, fine-tuned models, deployments (`Project.xbox-support`)") in md
    assert "| `-/+` | **replace** | `Hub.ft-hub` | Hub | location forces replacement |" in md
    assert '-   location = "eastus2"\n+   location = "westus3"  # forces replacement' in md

    none = project.cli("plan", "--format", "markdown")
    assert none.stdout.startswith("## foundryctl plan: no changes\n")
    assert "The backend matches the manifest." in none.stdout


def test_state_loss_of_a_retrained_job() -> None:
    from foundryctl.plan.render_markdown import render_markdown, state_loss

    job = ResourceChange("FineTuneJob.agent", "FineTuneJob", "agent", Action.REPLACE,
                         {"output_model": "agent", "hyperparameters": {"epochs": 2}},
                         {"output_model": "agent", "hyperparameters": {"epochs": 3}},
                         reasons=["hyperparameters forces replacement"], create_before_destroy=True)
    plan = Plan(Mode.NORMAL, [job], [], [], "lineage", 4, {"type": "local"}, "f", {})
    assert state_loss(job, plan) == ("a new training run; the old fine-tuned model `agent`, its "
                                     "checkpoints and metrics are deleted once the new one is trained")
    assert "- `FineTuneJob.agent` is replaced: a new training run" in render_markdown(plan)


def test_saved_plans_keep_cost_and_policy_results(tmp_path: Path) -> None:
    from foundryctl.cost.model import CostEstimate, CostLine, Price
    from foundryctl.policy.model import PolicyResult, Violation

    price = Price(2.0, "1K training tokens", "USD", "manifest", "sheet", "2026-11")
    cost = CostEstimate([CostLine("FineTuneJob.a", "FineTuneJob", "training", "priced", 1.26, "USD",
                                  "630 tokens", price, {"billed_tokens": 630})])
    results = [PolicyResult("max_epochs", "advisory", "foundry.yaml", "at most 2",
                            [Violation("3 epochs", "FineTuneJob.a")], checked=1)]
    plan = Plan(Mode.NORMAL, [], [], [], "lineage", 1, {"type": "local"}, "f", {}, cost=cost,
                policy_results=results)
    save_plan(plan, tmp_path / "plan")
    loaded = load_plan(tmp_path / "plan")
    assert loaded.cost == cost and loaded.policy_results == results
    assert loaded.to_dict()["policy_results"][0]["status"] == "warn"


def test_content_filter_rule_counts_a_category_switched_off_as_off(project: Project) -> None:
    write_project(project)
    project.edit('content_filter: {enabled: "${var.filter}"}',
                 'content_filter: {enabled: true, categories: {violence: "off", hate: high}}')
    policy = project.root / "policies" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_text("content_filter: {enforcement: mandatory}\n")
    result = project.cli("validate", "--policy-file", "policies/policy.yaml", *COMPLIANT)
    assert result.code == 1, result
    assert ("error: Deployment.agent: policy content_filter (mandatory): content filtering is turned off "
            "for violence (content_filter.categories: off)") in result.stderr


def test_a_huge_markdown_plan_still_fits_a_github_comment(project: Project) -> None:
    lines = ["version: 1", "backend: {type: local, registration_delay: 0}", "resources:"]
    for i in range(400):
        lines += [f"  - {{kind: Hub, name: hub-{i:04d}, location: eastus2, description: {'x' * 60}}}"]
    project.manifest.write_text("\n".join(lines) + "\n")
    result = project.cli("plan", "--format", "markdown")
    assert result.code == 0, result
    assert len(result.stdout) <= 60_000
    assert "400 to add" in result.stdout and "left out to keep this comment under GitHub's size limit" in result.stdout
