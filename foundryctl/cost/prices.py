"""Where prices come from: the manifest's `prices:` block, then the catalog.

The catalog holds Azure's list prices, each with its source URL and as-of date, and only
where one was found; the manifest's block holds the team's own (negotiated rates, another
currency, a price the catalog lacks). Nothing here makes a price up: a missing one is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundryctl.cost.model import Price
from foundryctl.errors import Diagnostic
from foundryctl.manifest.blocks import manifest_blocks
from foundryctl.manifest.pydantic_errors import validation_diagnostics

if TYPE_CHECKING:
    from foundryctl.manifest.model import Manifest

TRAINING_UNIT, HOSTING_UNIT = "1K training tokens", "hour"


class PriceEntry(BaseModel):
    """Prices of one base model (or one resource)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training_per_1k_tokens: float | None = Field(None, ge=0, description=(
        "Price of 1,000 billed training tokens (tokens x epochs)."))
    hosting_per_hour: float | None = Field(None, ge=0, description=(
        "Price of an hour of a deployment serving a fine-tuned model of this base model."))


class PricesBlock(BaseModel):
    """The manifest's top-level `prices:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every price here.")
    source: str = Field("the manifest's prices", min_length=1, description=(
        "Where these prices come from (a price sheet, a contract); shown beside every figure."))
    as_of: str | None = Field(None, description="When these prices were checked, e.g. 2026-11.")
    models: dict[str, PriceEntry] = Field(default_factory=dict, description=(
        "By base model: a catalog name, or base_model exactly as a FineTuneJob writes it."))
    resources: dict[str, PriceEntry] = Field(default_factory=dict, description=(
        "By resource address (FineTuneJob.NAME, Deployment.NAME); wins over `models`."))


@dataclass(frozen=True)
class CatalogPrice:
    training_per_1k_tokens: float | None
    hosting_per_hour: float | None
    currency: str
    source: str
    as_of: str


@cache
def catalog_prices() -> dict[str, CatalogPrice]:
    """Azure list prices from the catalog, by lower-cased model name. An entry without a
    source or date is a mistake in the data file, and is refused."""
    from foundryctl import catalog

    out = {}
    for model in catalog._load("models.yaml")["models"]:  # the same data file, raw
        raw = model.get("prices")
        if not raw:
            continue
        if not raw.get("source") or not raw.get("as_of"):
            raise ValueError(f"catalog price of {model['name']} has no source and as_of date")
        out[model["name"].lower()] = CatalogPrice(
            raw.get("training_per_1k_tokens"), raw.get("hosting_per_hour"),
            raw.get("currency", "USD"), raw["source"], str(raw["as_of"]))
    return out


def model_key(base_model: str) -> str:
    """A base model as price tables name it: its catalog name when it has one."""
    from foundryctl.models import parse_base_model

    try:
        ref = parse_base_model(base_model)
    except ValueError:
        return base_model.strip().lower()
    return (ref.entry.name if ref.entry is not None else ref.written).lower()


@dataclass
class PriceBook:
    """Every price a plan may use, looked up resource first, then model, then catalog."""

    manifest: PricesBlock | None = None
    models: dict[str, PriceEntry] = field(default_factory=dict)  # by model_key
    catalog: dict[str, CatalogPrice] = field(default_factory=catalog_prices)

    def training(self, address: str, base_model: str | None, *, use_catalog: bool = True) -> Price | None:
        return self._find(address, base_model, "training_per_1k_tokens", TRAINING_UNIT, use_catalog)

    def hosting(self, address: str, base_model: str | None) -> Price | None:
        return self._find(address, base_model, "hosting_per_hour", HOSTING_UNIT, True)

    def _find(self, address: str, base_model: str | None, attribute: str, unit: str,
              use_catalog: bool) -> Price | None:
        block = self.manifest
        if block is not None:
            entries = [block.resources.get(address)]
            if base_model:
                entries.append(self.models.get(model_key(base_model)))
            for entry in entries:
                value = getattr(entry, attribute) if entry is not None else None
                if value is not None:
                    return Price(float(value), unit, block.currency, "manifest", block.source, block.as_of)
        if use_catalog and base_model:
            listed = self.catalog.get(model_key(base_model))
            value = getattr(listed, attribute) if listed is not None else None
            if listed is not None and value is not None:
                return Price(float(value), unit, listed.currency, "catalog", listed.source, listed.as_of)
        return None


def load_price_book(manifest: Manifest) -> tuple[PriceBook, list[Diagnostic]]:
    """The manifest's prices (every `prices:` block of its files) and problems with them."""
    blocks, problems = manifest_blocks(manifest, "prices")
    diagnostics = list(problems)
    merged: PricesBlock | None = None
    models: dict[str, PriceEntry] = {}
    for block in blocks:
        try:
            parsed = PricesBlock.model_validate(block.value)
        except ValidationError as exc:
            diagnostics.extend(validation_diagnostics(exc, block.value, PricesBlock, block.position,
                                                      block.key_position, None))
            continue
        if merged is not None:
            if parsed.currency != merged.currency:
                diagnostics.append(Diagnostic.error(
                    f"prices in {parsed.currency} here, in {merged.currency} in another file",
                    block.position(("currency",)), code="prices"))
                continue
            clash = ((set(parsed.models) & set(merged.models))
                     | (set(parsed.resources) & set(merged.resources)))
            if clash:
                diagnostics.append(Diagnostic.error(
                    f"prices of {', '.join(sorted(clash))} are given in two files", block.position(),
                    code="prices"))
                continue
            parsed = merged.model_copy(update={"models": {**merged.models, **parsed.models},
                                               "resources": {**merged.resources, **parsed.resources}})
        merged = parsed
        for name in block.value.get("resources", {}) if isinstance(block.value, dict) else ():
            if name not in manifest.resources:
                diagnostics.append(Diagnostic.warning(
                    f"prices.resources: no resource {name} in the manifest",
                    block.key_position(("resources", name)) or block.position(("resources",)),
                    code="prices"))
    if merged is not None:
        for name, entry in merged.models.items():
            models[model_key(name)] = entry
    return PriceBook(merged, models), diagnostics
