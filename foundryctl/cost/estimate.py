"""Plan + manifest -> CostEstimate: what the changes in a plan will cost.

- A FineTuneJob that trains (created or replaced) costs its billed tokens — Σ min(context,
  tokens) over the training examples, per epoch (the dataset statistics) — × epochs × the
  price of 1K training tokens. On the local runner nobody bills it: without a price from
  the manifest, its line shows the estimated training time instead.
- A Deployment that is created or replaced costs its hosting per hour (the price for its
  model's base model).
Everything else is free, and a price that is not known is "unknown".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from foundryctl.cost.model import LOCAL, PRICED, UNKNOWN, CostEstimate, CostLine, money, unit_price
from foundryctl.cost.prices import PriceBook, load_price_book
from foundryctl.errors import ManifestError
from foundryctl.plan.model import Action, Mode

if TYPE_CHECKING:
    from foundryctl.kinds.deployment import DeploymentSpec
    from foundryctl.kinds.finetune_job import FineTuneJobSpec
    from foundryctl.manifest.model import Manifest, ResourceDecl
    from foundryctl.plan.model import Plan


def estimate_cost(plan: Plan, manifest: Manifest, prices: PriceBook | None = None) -> CostEstimate:
    """Cost lines for the plan's changes (none for destroy and refresh-only plans)."""
    if plan.mode is not Mode.NORMAL:
        return CostEstimate()
    if prices is None:
        prices, problems = load_price_book(manifest)
        if any(d.is_error for d in problems):
            raise ManifestError(problems)  # a broken block would silently turn prices unknown
    lines = []
    for change in plan.changes:
        if change.backend_id and change.action is Action.CREATE:
            continue  # adopting an existing object: nothing new runs
        decl = manifest.resources.get(change.address)
        if change.kind == "FineTuneJob" and change.action in (Action.CREATE, Action.REPLACE):
            lines.append(training_line(change.address, decl, manifest, prices))
        elif change.kind == "Deployment" and change.action in (Action.CREATE, Action.REPLACE):
            lines.append(hosting_line(change.address, decl, manifest, prices))
    return CostEstimate(lines)


def training_line(address: str, decl: ResourceDecl | None, manifest: Manifest,
                  prices: PriceBook) -> CostLine:
    # _report is the job kind's own dataset report (its base model's tokenizer and context).
    from foundryctl.kinds.finetune_job import _report, estimate, runner_of

    def line(status: str, amount: float | None, detail: str, **rest: Any) -> CostLine:
        return CostLine(address, "FineTuneJob", "training", status, amount,
                        rest.pop("currency", None), detail, **rest)

    if decl is None:
        return line(UNKNOWN, None, "not in the manifest", note="not in the manifest")
    spec = cast("FineTuneJobSpec", decl.spec)
    if spec.foundry_project is not None:
        return foundry_training_line(address, decl, manifest, prices)
    epochs = spec.hyperparameters.epochs
    runner = runner_of(spec, manifest)
    local = runner == "local"
    # The catalog's prices are Azure's: they price what Azure trains, not this machine.
    price = prices.training(address, spec.base_model, use_catalog=not local)
    note = _local_estimate(estimate(decl)) if local else None
    dataset = manifest.resources.get(f"Dataset.{spec.training_data}")
    try:
        report = _report(decl, dataset) if dataset is not None else None
    except OSError:
        report = None
    if report is None:
        why = "the training data cannot be read, so its tokens are not known"
        status = LOCAL if local and price is None else UNKNOWN
        return line(status, None, why, price=price, quantity={"epochs": epochs}, note=note or why)
    per_epoch = report.billed_tokens_per_epoch
    billed = per_epoch * epochs
    approx = "" if report.tokens_exact else "~"
    quantity = {"billed_tokens": billed, "billed_tokens_per_epoch": per_epoch, "epochs": epochs,
                "tokens_exact": report.tokens_exact, "base_model": spec.base_model, "runner": runner}
    tokens = f"{approx}{billed:,} billed tokens ({approx}{per_epoch:,} x {epochs} epoch(s))"
    if price is not None:
        amount = billed / 1000 * price.amount
        detail = f"{tokens} x {unit_price(price)} = {approx}{money(amount, price.currency)}"
        return line(PRICED, amount, detail, currency=price.currency, price=price, quantity=quantity,
                    note=note)
    if local:
        trained = f"{approx}{billed:,} tokens ({approx}{per_epoch:,} x {epochs} epoch(s)), no charge"
        return line(LOCAL, None, trained, quantity=quantity, note=note)
    return line(UNKNOWN, None, f"{tokens} x unknown price", quantity=quantity,
                note=f"no training price for {spec.base_model}")


def foundry_training_line(address: str, decl: ResourceDecl, manifest: Manifest, prices: PriceBook) -> CostLine:
    """A Foundry project's job: its training file's tokens x epochs, at the price a `prices:`
    block gives for the model (the catalog records none), with its training tier's relative
    price from Learn (Global Standard and Developer cost less than Standard) beside it."""
    from foundryctl.kinds.finetune_job import runner_of
    from foundryctl.kinds.foundry_finetune import billed_tokens, tier_note

    spec = cast("FineTuneJobSpec", decl.spec)
    epochs = spec.hyperparameters.epochs
    local = runner_of(spec, manifest) == "local"
    price = prices.training(address, spec.base_model, use_catalog=not local)
    tier = tier_note(spec.training_type)
    tokens = billed_tokens(decl)

    def line(status: str, amount: float | None, detail: str, **rest: Any) -> CostLine:
        return CostLine(address, "FineTuneJob", "training", status, amount, rest.pop("currency", None),
                        detail, **rest)

    if tokens is None:
        why = "the training file cannot be read, so its tokens are not known"
        return line(LOCAL if local and price is None else UNKNOWN, None, why, price=price,
                    quantity={"epochs": epochs}, note=why)
    per_epoch, exact = tokens
    billed = per_epoch * epochs
    approx = "" if exact else "~"
    quantity = {"billed_tokens": billed, "billed_tokens_per_epoch": per_epoch, "epochs": epochs,
                "tokens_exact": exact, "base_model": spec.base_model, "training_type": spec.training_type,
                "method": spec.method, "runner": "local" if local else "azure"}
    text = f"{approx}{billed:,} billed tokens ({approx}{per_epoch:,} x {epochs} epoch(s)), {spec.training_type}"
    if price is not None:
        amount = billed / 1000 * price.amount
        return line(PRICED, amount, f"{text} x {unit_price(price)} = {approx}{money(amount, price.currency)}",
                    currency=price.currency, price=price, quantity=quantity, note=tier or None)
    if local:
        return line(LOCAL, None, f"{text}, no charge (the local substitute trains)", quantity=quantity,
                    note=tier or None)
    return line(UNKNOWN, None, f"{text} x unknown price", quantity=quantity,
                note=f"no training price for {spec.base_model}" + (f" ({tier})" if tier else ""))


def hosting_line(address: str, decl: ResourceDecl | None, manifest: Manifest,
                 prices: PriceBook) -> CostLine:
    base_model = served_base_model(decl, manifest) if decl is not None else None
    price = prices.hosting(address, base_model)
    quantity = {"base_model": base_model}
    if price is not None:
        return CostLine(address, "Deployment", "hosting", PRICED, price.amount, price.currency,
                        f"{unit_price(price)} while it runs", price, quantity)
    why = (f"no hosting price for {base_model}" if base_model else
           "the base model of the served model is not known from the manifest")
    return CostLine(address, "Deployment", "hosting", UNKNOWN, None, None, "unknown per hour",
                    None, quantity, why)


def served_base_model(decl: ResourceDecl, manifest: Manifest) -> str | None:
    """The base model a deployment's model was fine-tuned from, where the manifest says."""
    spec = cast("DeploymentSpec", decl.spec)
    if spec.model.job is not None:
        job = manifest.resources.get(f"FineTuneJob.{spec.model.job}")
        return cast("FineTuneJobSpec", job.spec).base_model if job is not None else None
    for address in manifest.addresses_of_kind("FineTuneJob"):
        job_spec = cast("FineTuneJobSpec", manifest.resources[address].spec)
        if (job_spec.output_model or job_spec.name) == spec.model.name and job_spec.project == spec.project:
            return job_spec.base_model
    return None


def _local_estimate(text: str) -> str:
    """The job kind's estimate ('new training run: ~N tokens x E epoch(s), est. D on the CPU')
    as a note on a cost line: 'local runner: est. D on the CPU' (the tokens are on the line)."""
    _, found, duration = text.partition("est. ")
    if found:
        return f"local runner: est. {duration}"
    rest = text.removeprefix("new training run").removeprefix(": ")
    return "local runner: " + (rest or "training time unknown")
