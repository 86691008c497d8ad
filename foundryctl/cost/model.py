"""A plan's cost estimate as plain data: one line per resource that costs money, and totals.

An amount is None when its price is not known: shown as "unknown", never guessed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PRICED, UNKNOWN, LOCAL = "priced", "unknown", "local"


@dataclass(frozen=True)
class Price:
    amount: float
    unit: str  # "1K training tokens" or "hour"
    currency: str
    origin: str  # "manifest" or "catalog"
    source: str  # where the figure comes from: a URL, or what the manifest says
    as_of: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Price:
        return cls(**data)


@dataclass
class CostLine:
    address: str
    kind: str
    item: str  # "training" (once) or "hosting" (per hour)
    status: str  # PRICED, UNKNOWN, or LOCAL (trained on this machine: a duration, no charge)
    amount: float | None  # training: the total; hosting: per hour
    currency: str | None
    detail: str  # how the figure was made, in words
    price: Price | None = None
    quantity: dict[str, Any] = field(default_factory=dict)  # billed tokens, epochs, ...
    note: str | None = None  # why unknown, or the local runner's estimate

    @property
    def per_hour(self) -> bool:
        return self.item == "hosting"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["price"] = self.price.to_dict() if self.price else None
        out["per"] = "hour" if self.per_hour else "once"
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CostLine:
        fields = {k: v for k, v in data.items() if k != "per"}
        fields["price"] = Price.from_dict(data["price"]) if data.get("price") else None
        return cls(**fields)


@dataclass
class CostEstimate:
    lines: list[CostLine] = field(default_factory=list)

    def totals(self) -> dict[str, dict[str, float]]:
        """Known amounts by currency: {"USD": {"once": 1.26, "per_hour": 0.8}}."""
        out: dict[str, dict[str, float]] = {}
        for line in self.lines:
            if line.status == PRICED and line.amount is not None and line.currency:
                bucket = out.setdefault(line.currency, {"once": 0.0, "per_hour": 0.0})
                bucket["per_hour" if line.per_hour else "once"] += line.amount
        return out

    @property
    def unknown_once(self) -> list[str]:
        return [x.address for x in self.lines if x.status == UNKNOWN and not x.per_hour]

    @property
    def unknown_per_hour(self) -> list[str]:
        return [x.address for x in self.lines if x.status == UNKNOWN and x.per_hour]

    def total_text(self) -> str:
        """'training $1.26 + unknown; hosting $0.80/hour': '+ unknown' where a price is missing."""
        parts = []
        for per_hour, label in ((False, "training"), (True, "hosting")):
            text = self._sum_text(per_hour)
            if text:
                parts.append(f"{label} {text}")
        return "; ".join(parts) if parts else "nothing billed"

    def _sum_text(self, per_hour: bool) -> str | None:
        lines = [x for x in self.lines if x.per_hour is per_hour]
        if not lines:
            return None
        sums: dict[str, float] = {}
        for line in lines:
            if line.status == PRICED and line.amount is not None and line.currency:
                sums[line.currency] = sums.get(line.currency, 0.0) + line.amount
        # A total made from approximate token counts is approximate too.
        approx = "~" if any(x.status == PRICED and x.quantity.get("tokens_exact") is False
                            for x in lines) else ""
        figures = [approx + money(v, c) + ("/hour" if per_hour else "") for c, v in sums.items()]
        if any(x.status == UNKNOWN for x in lines):
            figures.append("unknown")
        return " + ".join(figures) if figures else "none billed (local runner)"

    def to_dict(self) -> dict[str, Any]:
        return {"lines": [line.to_dict() for line in self.lines],
                "totals": self.totals(),
                "unknown": {"once": self.unknown_once, "per_hour": self.unknown_per_hour},
                "total_text": self.total_text()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CostEstimate | None:
        if data is None:
            return None
        return cls([CostLine.from_dict(line) for line in data.get("lines", [])])


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(amount: float, currency: str) -> str:
    """$1.26, $0.0019 (small amounts keep their digits), 12.50 CHF."""
    if amount and abs(amount) < 0.01:
        text = f"{amount:.6f}".rstrip("0")
    else:
        text = f"{amount:,.2f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def unit_price(price: Price) -> str:
    """$0.003/1K training tokens, $0.80/hour."""
    text = f"{price.amount:.6f}".rstrip("0")
    if len(text.partition(".")[2]) < 2:
        text = f"{price.amount:,.2f}"
    symbol = _SYMBOLS.get(price.currency)
    figure = f"{symbol}{text}" if symbol else f"{text} {price.currency}"
    return f"{figure}/{price.unit}"
