"""Apply: walk a plan's operations in dependency order, in parallel, recording as it goes."""

from foundryctl.apply.applier import ApplyEvent, ApplyResult, apply_plan
from foundryctl.apply.walker import ApplyAborted

__all__ = ["ApplyAborted", "ApplyEvent", "ApplyResult", "apply_plan"]
