"""Apply: walk a plan's operations in dependency order, in parallel, recording as it goes."""

from foundryctl.apply.applier import ApplyEvent, ApplyResult, apply_plan

__all__ = ["ApplyEvent", "ApplyResult", "apply_plan"]
