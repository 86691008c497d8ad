"""SARIF 2.1.0: diagnostics as one run for code-scanning dashboards (GitHub code scanning).

One rule per diagnostic code, one result per diagnostic. Locations are relative URIs under
the `%SRCROOT%` base (the repository root), so the dashboard links to the manifest's lines.
A hint goes into the result's message: SARIF's `fixes` must carry concrete edits, and a hint
is advice, not an edit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from foundryctl.report.paths import relative_to_root, report_root

if TYPE_CHECKING:
    from foundryctl.errors import Diagnostic

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
SRCROOT = "%SRCROOT%"
# Where rules' helpUri and the tool's informationUri point: the docs/ folder of the project's
# public repository. One constant to change if the project moves.
DOCS_URL = "https://github.com/foundryctl/foundryctl/blob/main/docs/"

# code -> (short description, docs page). Codes not listed get a generic description.
RULES: dict[str, tuple[str, str]] = {
    "manifest": ("The manifest breaks a structural rule.", "manifest.md"),
    "yaml-syntax": ("The file is not valid YAML.", "manifest.md"),
    "yaml-key": ("A mapping key is not a plain string.", "manifest.md"),
    "yaml-value": ("A YAML value cannot be read.", "manifest.md"),
    "duplicate-key": ("A mapping repeats a key.", "manifest.md"),
    "encoding": ("The file is not valid UTF-8.", "manifest.md"),
    "io": ("A file cannot be found or read.", "manifest.md"),
    "unknown-key": ("A key the schema does not know (often misspelt).", "manifest-reference.md"),
    "missing-field": ("A required field is missing.", "manifest-reference.md"),
    "invalid-value": ("A value breaks the field's type, range or catalog rule.", "manifest-reference.md"),
    "unknown-kind": ("A resource kind that does not exist.", "manifest-reference.md"),
    "interpolation": ("A ${var.NAME} or ${env.NAME} reference cannot be resolved.", "manifest.md"),
    "undeclared-variable": ("A value is given for a variable the manifest does not declare.", "manifest.md"),
    "missing-variable": ("A variable has neither a default nor a value.", "manifest.md"),
    "duplicate-resource": ("Two resources have the same address.", "manifest.md"),
    "dangling-reference": ("A reference names a resource the manifest does not declare.", "manifest.md"),
    "cycle": ("The dependency graph has a cycle.", "manifest.md"),
    "name-conflict": ("Two resources would create Azure objects with the same name.", "datasets.md"),
    "validation-is-training": ("A dataset's validation file is its training file.", "datasets.md"),
    "cross-project": ("A resource uses another project's data or model.", "manifest.md"),
    "port-conflict": ("Two deployments ask for the same local port.", "deployments.md"),
    "prices": ("The manifest's prices block is invalid.", "manifest.md"),
}


def rule_for(code: str) -> dict[str, Any]:
    """The reportingDescriptor of a diagnostic code."""
    known = RULES.get(code)
    if known is None and code.startswith("policy."):  # policy.RULE: one rule per policy rule
        known = (f"The policy rule '{code.removeprefix('policy.')}' is violated.", "policies.md")
    if known is None:
        from foundryctl.datasets.report import CATEGORIES

        category = CATEGORIES.get(code)
        if category is not None:  # a dataset problem: its category's description
            text = category[1][0].upper() + category[1][1:] + "."
            known = (text, "datasets.md")
    text, page = known or (f"foundryctl check '{code}'.", "manifest.md")
    return {
        "id": code,
        "name": "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", code)),
        "shortDescription": {"text": text},
        "helpUri": DOCS_URL + page,
        "help": {"text": f"See docs/{page}."},
    }


def _message(diagnostic: Diagnostic, shown_file: bool) -> str:
    text = diagnostic.message
    if diagnostic.address:
        text = f"{diagnostic.address}: {text}"
    if diagnostic.position is not None and not shown_file:
        text = f"{diagnostic.position}: {text}"  # no location a dashboard can link: say where
    if diagnostic.hint:
        text += f"\nhint: {diagnostic.hint}"
    return text


def _location(diagnostic: Diagnostic, root: Path, default_file: str | None) -> dict[str, Any] | None:
    position = diagnostic.position
    if position is None and default_file is not None:
        # Code scanning drops results without a location: pin the manifest's first line.
        from foundryctl.errors import Position

        position = Position(default_file, 1, 1)
    if position is None:
        return None
    relative = relative_to_root(position.file, root)
    if relative is not None:
        artifact: dict[str, Any] = {"uri": quote(relative), "uriBaseId": SRCROOT}
    else:
        artifact = {"uri": Path(position.file).resolve().as_uri()}
    location: dict[str, Any] = {"physicalLocation": {
        "artifactLocation": artifact,
        "region": {"startLine": position.line, "startColumn": position.column},
    }}
    if diagnostic.address:
        location["logicalLocations"] = [{"fullyQualifiedName": diagnostic.address, "kind": "resource"}]
    return location


def sarif_log(diagnostics: Sequence[Diagnostic], *, root: Path | None = None,
              default_file: str | None = None) -> dict[str, Any]:
    """The SARIF log (a JSON-ready dict) of one foundryctl run; diagnostics without a position
    are reported at line 1 of `default_file` (the manifest) when it is given."""
    from foundryctl import __version__

    root = root or report_root()
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for diagnostic in diagnostics:
        code = diagnostic.code or "manifest"
        if code not in index:
            index[code] = len(rules)
            rules.append(rule_for(code))
        location = _location(diagnostic, root, default_file)
        linkable = location is not None and "uriBaseId" in location["physicalLocation"]["artifactLocation"]
        result: dict[str, Any] = {
            "ruleId": code,
            "ruleIndex": index[code],
            "level": "error" if diagnostic.is_error else "warning",
            "message": {"text": _message(diagnostic, linkable)},
        }
        if location is not None:
            result["locations"] = [location]
        if diagnostic.hint:
            result["properties"] = {"hint": diagnostic.hint}
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {
                "name": "foundryctl",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": DOCS_URL + "gitops.md",
                "rules": rules,
            }},
            # Lets a viewer outside GitHub find the files; GitHub resolves against its checkout.
            "originalUriBaseIds": {SRCROOT: {"uri": root.as_uri().rstrip("/") + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
