"""The resource graph: a DAG of addresses built from the manifest."""

from foundryctl.graph.build import build_graph
from foundryctl.graph.dag import CycleError, Graph

__all__ = ["CycleError", "Graph", "build_graph"]
