"""The built-in rules. Each looks at one resource's desired attributes (or, for cost, at the
plan's estimate) and says what violates it; enforcement is decided by the caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from foundryctl.cost.model import PRICED, UNKNOWN, money
from foundryctl.policy.model import Violation

if TYPE_CHECKING:
    from foundryctl.cost.model import CostEstimate
    from foundryctl.errors import Position
    from foundryctl.manifest.model import ResourceDecl
    from foundryctl.policy.config import (
        AllowedBaseModelsRule,
        AllowedRegionsRule,
        MaxCostRule,
        MaxEpochsRule,
        RuleSettings,
    )


@dataclass
class Subject:
    """A resource as the rules see it: desired attributes (the manifest's, or a plan's `after`)."""

    address: str
    kind: str
    attributes: Mapping[str, Any]
    protect: bool
    decl: ResourceDecl | None = None

    def position(self, path: tuple) -> Position | None:
        return self.decl.position_of(path) if self.decl is not None else None

    def violation(self, message: str, path: tuple) -> Violation:
        return Violation(message, self.address, self.position(path))


class ResourceRule:
    """A rule over resources of some kinds."""

    name = ""
    kinds: frozenset[str] = frozenset()

    def __init__(self, settings: RuleSettings):
        self.settings = settings

    def description(self) -> str:
        raise NotImplementedError

    def check(self, subject: Subject) -> Violation | None:
        raise NotImplementedError


class ContentFilterOn(ResourceRule):
    name = "content_filter"
    kinds = frozenset({"Deployment"})

    def description(self) -> str:
        return "deployments keep content filtering on"

    def check(self, subject: Subject) -> Violation | None:
        content_filter = subject.attributes.get("content_filter") or {}
        if content_filter.get("enabled", True) is False:
            return subject.violation("content filtering is turned off (content_filter.enabled: false)",
                                     ("content_filter", "enabled"))
        # Every category switched off is filtering off under another name.
        off = sorted(c for c, level in (content_filter.get("categories") or {}).items() if level == "off")
        if off:
            return subject.violation(f"content filtering is turned off for {', '.join(off)} "
                                     "(content_filter.categories: off)", ("content_filter", "categories"))
        return None


class RequireProtect(ResourceRule):
    name = "require_protect"
    kinds = frozenset({"Deployment"})

    def description(self) -> str:
        return "deployments have protect: true"

    def check(self, subject: Subject) -> Violation | None:
        if subject.protect:
            return None
        return subject.violation("a deployment must have `protect: true`", ("protect",))


class RequireGates(ResourceRule):
    name = "require_gates"
    kinds = frozenset({"Deployment"})

    def description(self) -> str:
        return "deployments of fine-tuned models are promoted by an evaluation gate"

    def check(self, subject: Subject) -> Violation | None:
        if not (subject.attributes.get("model") or {}).get("job") or subject.attributes.get("promote_when"):
            return None
        return subject.violation("a deployment of a fine-tuned model must name an evaluation gate "
                                 "(promote_when: [Evaluation.NAME])", ("promote_when",))


class AllowedRegions(ResourceRule):
    name = "allowed_regions"
    kinds = frozenset({"Hub", "FoundryAccount"})
    settings: AllowedRegionsRule

    def description(self) -> str:
        return "hubs and Foundry accounts only in " + ", ".join(self.settings.regions)

    def check(self, subject: Subject) -> Violation | None:
        from foundryctl import catalog

        written = str(subject.attributes.get("location") or "")
        region = catalog.normalize_region(written) or written
        if region in self.settings.regions:
            return None
        return subject.violation(f"region {region} is not allowed (allowed: "
                                 f"{', '.join(self.settings.regions)})", ("location",))


class AllowedBaseModels(ResourceRule):
    name = "allowed_base_models"
    kinds = frozenset({"FineTuneJob"})
    settings: AllowedBaseModelsRule

    def description(self) -> str:
        return "fine-tuning only of " + ", ".join(self.settings.models)

    def check(self, subject: Subject) -> Violation | None:
        written = str(subject.attributes.get("base_model") or "")
        names = _model_names(written)
        patterns = {p.lower() for p in self.settings.models}
        patterns |= {n for p in self.settings.models if not any(c in p for c in "*?[")
                     for n in _model_names(p)}
        if any(fnmatchcase(n, p) for n in names for p in patterns):
            return None
        return subject.violation(f"base model {written} is not allowed (allowed: "
                                 f"{', '.join(self.settings.models)})", ("base_model",))


def _model_names(value: str) -> set[str]:
    """Every name a base model goes by: as written, and a catalog model's name and Hugging
    Face id (with and without `hf:`), lower-cased."""
    from foundryctl.models import parse_base_model

    names = {value.strip().lower()}
    try:
        entry = parse_base_model(value).entry
    except ValueError:
        return names
    if entry is not None:
        names |= {entry.name.lower(), entry.hf_id.lower(), f"hf:{entry.hf_id.lower()}"}
    return names


class MaxEpochs(ResourceRule):
    name = "max_epochs"
    kinds = frozenset({"FineTuneJob"})
    settings: MaxEpochsRule

    def description(self) -> str:
        return f"at most {self.settings.max} epoch(s) per fine-tune job"

    def check(self, subject: Subject) -> Violation | None:
        epochs = (subject.attributes.get("hyperparameters") or {}).get("epochs")
        if not isinstance(epochs, int) or epochs <= self.settings.max:
            return None
        return subject.violation(f"{epochs} epochs, over the limit of {self.settings.max}",
                                 ("hyperparameters", "epochs"))


RESOURCE_RULES: dict[str, type[ResourceRule]] = {
    rule.name: rule for rule in (ContentFilterOn, AllowedRegions, AllowedBaseModels, MaxEpochs,
                                 RequireProtect, RequireGates)}


def max_cost_description(settings: MaxCostRule) -> str:
    limits = []
    if settings.training is not None:
        limits.append(f"training at most {money(settings.training, settings.currency)}")
    if settings.hosting_per_hour is not None:
        limits.append(f"hosting at most {money(settings.hosting_per_hour, settings.currency)}/hour")
    return "estimated cost per plan: " + ", ".join(limits)


def check_max_cost(settings: MaxCostRule, cost: CostEstimate, *, trust_manifest_prices: bool = True
                   ) -> list[Violation]:
    """The plan's training total and new hourly hosting against the limits. A limit from a
    policy file does not trust prices the manifest sets itself (the change under review could
    price itself under any limit): those lines count as unknown."""
    out = []
    for per_hour, limit, what in ((False, settings.training, "training"),
                                  (True, settings.hosting_per_hour, "hosting")):
        if limit is None:
            continue
        lines = [x for x in cost.lines if x.per_hour is per_hour]

        def usable(line: Any) -> bool:
            return (line.status == PRICED and line.currency == settings.currency
                    and (trust_manifest_prices or line.price is None or line.price.origin != "manifest"))

        priced = [x for x in lines if usable(x)]
        # A price in another currency, or one the limit does not trust, counts as unknown here.
        unknown = [x for x in lines if x.status == UNKNOWN or (x.status == PRICED and not usable(x))]
        total = sum(x.amount or 0.0 for x in priced)
        unit = "/hour" if per_hour else ""
        if total > limit:
            parts = ", ".join(f"{x.address} {money(x.amount or 0.0, settings.currency)}{unit}"
                              for x in priced)
            out.append(Violation(f"estimated {what} cost {money(total, settings.currency)}{unit} is over "
                                 f"the limit of {money(limit, settings.currency)}{unit} ({parts})",
                                 priced[0].address if len(priced) == 1 else None))
        if unknown and not settings.allow_unknown:
            for line in unknown:
                why = line.note or "unknown price"
                if line.status == PRICED and line.currency == settings.currency:
                    why = "priced by the manifest itself, which a policy file's limit does not trust"
                out.append(Violation(f"the {what} cost is unknown ({why}), so it cannot be shown to be "
                                     f"under {money(limit, settings.currency)}{unit}", line.address))
    return out
