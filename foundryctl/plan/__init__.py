"""Plans: refresh and diff into plain data that is rendered, saved and applied as it is."""

from foundryctl.plan.model import (
    Action,
    AttributeChange,
    Drift,
    Mode,
    Plan,
    ResourceChange,
    StateRepair,
)
from foundryctl.plan.planfile import load_plan, save_plan
from foundryctl.plan.planner import PlanOptions, make_plan

__all__ = ["Action", "AttributeChange", "Drift", "Mode", "Plan", "PlanOptions", "ResourceChange",
           "StateRepair", "load_plan", "make_plan", "save_plan"]
