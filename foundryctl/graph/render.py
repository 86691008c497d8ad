"""DOT and Mermaid renderings of the graph (`foundryctl graph`)."""

from __future__ import annotations

import re

from foundryctl.graph.dag import Graph


def to_dot(graph: Graph) -> str:
    lines = ["digraph foundryctl {", '  rankdir = "RL";', '  node [shape = box];']
    lines += [f'  "{node}";' for node in graph.nodes]
    lines += [f'  "{node}" -> "{dep}";' for node, dep in graph.edges()]
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph) -> str:
    ids = {node: re.sub(r"[^A-Za-z0-9_]", "_", node) for node in graph.nodes}
    lines = ["flowchart RL"]
    lines += [f'  {ids[node]}["{node}"]' for node in graph.nodes]
    lines += [f"  {ids[node]} --> {ids[dep]}" for node, dep in graph.edges()]
    return "\n".join(lines) + "\n"
