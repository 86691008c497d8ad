"""Cost in the plan: billed training tokens x price, hosting per hour; unknown stays unknown.

See docs/cost.md. Prices come from the manifest's `prices:` block or the catalog.
"""

from foundryctl.cost.estimate import estimate_cost
from foundryctl.cost.model import CostEstimate, CostLine, Price, money
from foundryctl.cost.prices import PriceBook, PricesBlock, load_price_book

__all__ = ["CostEstimate", "CostLine", "Price", "PriceBook", "PricesBlock", "estimate_cost",
           "load_price_book", "money"]
