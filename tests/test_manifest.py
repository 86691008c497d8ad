"""Tests for manifest loading: diagnostics, interpolation, variables, merging, the graph and `validate`.

Every test writes real YAML files into pytest's `tmp_path` (which is also the working
directory, so diagnostics name files relative to it, e.g. `main.yaml`) and loads them with
the real loader or runs the real CLI in a subprocess. Expected lines and columns are
computed from the YAML text written, never hard-coded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from foundryctl.errors import Diagnostic, ManifestError, Position
from foundryctl.manifest import Manifest, load_manifest
from foundryctl.manifest.interpolate import Interpolator

# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test inside its tmp_path, so diagnostics show short relative file names."""
    monkeypatch.chdir(tmp_path)


def write(directory: Path, name: str, text: str) -> Path:
    """Write dedented `text` to directory/name and return the path."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def source(path: Path) -> str:
    """The text of a file written by `write`."""
    return path.read_text(encoding="utf-8")


def locate(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) where the `occurrence`-th `needle` starts in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.find(needle, index + 1)
        assert index >= 0, f"{needle!r} occurs fewer than {occurrence} times in the manifest"
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def position(path: Path, needle: str, occurrence: int = 1) -> Position:
    """Where `needle` was written in `path` (a file directly in tmp_path, the cwd)."""
    return Position(path.name, *locate(source(path), needle, occurrence))


def load_ok(path: Path, **kwargs: Any) -> Manifest:
    """Load a manifest that must be valid; show every diagnostic if it is not."""
    try:
        return load_manifest(path, **kwargs)
    except ManifestError as exc:  # pragma: no cover - only reached when a test fails
        pytest.fail("unexpected manifest errors:\n" + "\n".join(map(str, exc.diagnostics)))


def load_errors(path: Path, **kwargs: Any) -> list[Diagnostic]:
    """Load a manifest that must be invalid; return its error diagnostics."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, **kwargs)
    return [d for d in caught.value.diagnostics if d.is_error]


def only(diagnostics: Iterable[Diagnostic], fragment: str) -> Diagnostic:
    """The single diagnostic whose message contains `fragment`."""
    diagnostics = list(diagnostics)
    found = [d for d in diagnostics if fragment in d.message]
    assert len(found) == 1, (f"expected one diagnostic containing {fragment!r}, got:\n"
                             + "\n".join(map(str, diagnostics)))
    return found[0]


def attributes(manifest: Manifest, address: str) -> dict[str, Any]:
    """The attributes a backend would receive for `address`."""
    return manifest.resources[address].attributes


# -- 1. every error, positioned and addressed, in one run -------------------------------

MULTI_ERROR_MANIFEST = """
version: 1
resources:
  - kind: ProviderRegistration
    name: network
    namespace: Microsoft.Network

  - kind: Hub
    name: ft-hub
    locaton: eastus2

  - kind: Hub
    name: ops-hub
    location: westus
    tags: [ml, dev]

  - kind: Hub
    name: main-hub
    location: eastus2

  - kind: Hubb
    name: spare
    location: eastus2

  - kind: RoleAssignment
    name: developer
    principal: ml-engineer@contoso.com
    role: Azure AI Develper
    scope: {hub: main-hub}

  - kind: Project
    name: xbox-support
    hub: main-hubb

  - kind: Project
    name: helpdesk
    hub: main-hub

  - kind: Project
    name: helpdesk
    hub: main-hub

  - kind: Project
    name: billing
    hub: main-hub
    description: first
    description: second
"""


@dataclass(frozen=True)
class Expected:
    """One diagnostic the multi-error manifest must produce."""

    code: str
    needle: str  # where it must point: the start of this text ...
    occurrence: int  # ... at this occurrence
    address: str
    fragments: tuple[str, ...]  # texts its message must contain


MULTI_ERRORS = [
    Expected("unknown-key", "locaton", 1, "Hub.ft-hub",
             ("unknown key 'locaton'", "did you mean 'location'")),
    Expected("invalid-value", "[ml, dev]", 1, "Hub.ops-hub", ("tags", "valid dictionary")),
    Expected("unknown-kind", "Hubb", 1, "Hubb.spare", ("unknown kind 'Hubb'", "did you mean 'Hub'")),
    Expected("invalid-value", "Azure AI Develper", 1, "RoleAssignment.developer",
             ("unknown role 'Azure AI Develper'", "did you mean 'Azure AI Developer'")),
    Expected("dangling-reference", "main-hubb", 1, "Project.xbox-support",
             ("Hub 'main-hubb'", "did you mean 'main-hub'")),
    Expected("duplicate-resource", "kind: Project\n    name: helpdesk", 2, "Project.helpdesk",
             ("duplicate resource Project.helpdesk",)),
    Expected("duplicate-key", "description:", 2, "Project.billing", ("duplicate key 'description'",)),
]


def multi_error_diagnostics(tmp_path: Path) -> tuple[Path, list[Diagnostic]]:
    path = write(tmp_path, "main.yaml", MULTI_ERROR_MANIFEST)
    return path, load_errors(path)


def test_every_independent_mistake_is_reported_in_one_run(tmp_path: Path) -> None:
    """One load reports all seven mistakes, each once, at its own position."""
    path, errors = multi_error_diagnostics(tmp_path)
    got = sorted((d.code, str(d.position)) for d in errors)
    wanted = sorted((e.code, str(position(path, e.needle, e.occurrence))) for e in MULTI_ERRORS)
    assert got == wanted, "\n".join(map(str, errors))


@pytest.mark.parametrize("expected", MULTI_ERRORS, ids=[e.address for e in MULTI_ERRORS])
def test_each_mistake_has_position_address_and_message(tmp_path: Path, expected: Expected) -> None:
    """file:line:column where it was written, the resource address, and a helpful message."""
    path, errors = multi_error_diagnostics(tmp_path)
    where = position(path, expected.needle, expected.occurrence)
    matching = [d for d in errors if d.code == expected.code and d.position == where]
    assert len(matching) == 1, f"no {expected.code} at {where}:\n" + "\n".join(map(str, errors))
    diagnostic = matching[0]
    for fragment in expected.fragments:
        assert fragment in diagnostic.message
    assert diagnostic.address == expected.address


def test_duplicate_resource_names_the_first_declaration(tmp_path: Path) -> None:
    path, errors = multi_error_diagnostics(tmp_path)
    first = position(path, "kind: Project\n    name: helpdesk", occurrence=1)
    assert f"(first declared at {first})" in only(errors, "duplicate resource").message


def test_duplicate_yaml_key_names_the_first_line(tmp_path: Path) -> None:
    path, errors = multi_error_diagnostics(tmp_path)
    first_line, _ = locate(source(path), "description: first")
    assert f"first defined at line {first_line}" in only(errors, "duplicate key").message


def test_error_address_uses_the_interpolated_resource_name(tmp_path: Path) -> None:
    """A name given by a variable: errors name the real address, references to it are not dangling."""
    path = write(tmp_path, "main.yaml", """
        version: 1
        variables:
          hub_name: ft-hub
        resources:
          - kind: Hub
            name: ${var.hub_name}
            location: nowhere
          - kind: Project
            name: xbox-support
            hub: ft-hub
        """)
    errors = load_errors(path)
    # Hub.ft-hub is declared (it merely failed validation): no dangling-reference error.
    assert [d.code for d in errors] == ["invalid-value"], "\n".join(map(str, errors))
    region = only(errors, "unknown Azure region")
    assert region.position == position(path, "nowhere")
    assert region.address == "Hub.ft-hub"


def test_dangling_reference_suggests_a_declared_but_invalid_resource(tmp_path: Path) -> None:
    """'did you mean' also considers resources that are declared but have errors of their own."""
    path = write(tmp_path, "main.yaml", """
        version: 1
        resources:
          - kind: Hub
            name: ft-hub
            locaton: eastus2
          - kind: Project
            name: xbox-support
            hub: ft-hubb
        """)
    dangling = only(load_errors(path), "which is not in the manifest")
    assert dangling.position == position(path, "ft-hubb")
    assert dangling.address == "Project.xbox-support"
    assert "did you mean 'ft-hub'" in dangling.message


# -- 2. top-level keys and version -------------------------------------------------------


def test_unknown_top_level_key_suggests_the_real_one(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", """
        version: 1
        resource:
          - kind: ProviderRegistration
            name: network
            namespace: Microsoft.Network
        """)
    diagnostic = only(load_errors(path), "unknown top-level key")
    assert "'resource'" in diagnostic.message
    assert "did you mean 'resources'" in diagnostic.message
    assert diagnostic.position == position(path, "resource:")
    assert diagnostic.code == "unknown-key"


def test_missing_version_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", """
        resources:
          - kind: ProviderRegistration
            name: network
            namespace: Microsoft.Network
        """)
    errors = load_errors(path)
    diagnostic = only(errors, "version")
    assert "missing" in diagnostic.message
    assert diagnostic.code == "missing-field"
    assert diagnostic.position is not None and diagnostic.position.file == "main.yaml"
    assert len(errors) == 1


def test_unsupported_version_is_reported_at_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", """
        version: 2
        resources: []
        """)
    diagnostic = only(load_errors(path), "unsupported manifest version")
    assert "2" in diagnostic.message and "supported: 1" in diagnostic.message
    assert diagnostic.position == position(path, "2")


def test_unsupported_version_is_not_also_reported_as_missing(tmp_path: Path) -> None:
    """`version: 2` is present, so the only error is that it is unsupported."""
    path = write(tmp_path, "main.yaml", """
        version: 2
        resources: []
        """)
    errors = load_errors(path)
    assert [d.message for d in errors] == ["unsupported manifest version 2 (supported: 1)"]


# -- 3. dependency cycles ----------------------------------------------------------------


def test_dependency_cycle_prints_the_cycle_path(tmp_path: Path) -> None:
    """registration -> role assignment (depends_on) -> hub (scope) -> registration (implicit)."""
    path = write(tmp_path, "main.yaml", """
        version: 1
        resources:
          - kind: ProviderRegistration
            name: network
            namespace: Microsoft.Network
            depends_on: [RoleAssignment.developer]
          - kind: Hub
            name: ft-hub
            location: eastus2
          - kind: RoleAssignment
            name: developer
            principal: ml-engineer@contoso.com
            role: Azure AI Developer
            scope: {hub: ft-hub}
        """)
    diagnostic = only(load_errors(path), "dependency cycle")
    assert diagnostic.code == "cycle"
    match = re.search(r"dependency cycle: (.*)$", diagnostic.message)
    assert match is not None
    cycle = match.group(1).split(" -> ")
    assert len(cycle) == 4 and cycle[0] == cycle[-1], diagnostic.message
    ring = ["ProviderRegistration.network", "RoleAssignment.developer", "Hub.ft-hub"]
    start = ring.index(cycle[0])
    assert cycle[:-1] == ring[start:] + ring[:start], "the path must follow the edges' direction"
    first = cycle[0]
    assert diagnostic.address == first
    kind, name = first.split(".")
    assert diagnostic.position == position(path, f"kind: {kind}\n    name: {name}")


# -- 4. YAML syntax errors ---------------------------------------------------------------


@pytest.mark.parametrize("broken_line, needle", [
    ("    location: eastus2: westus", ": westus"),
    ("   location: eastus2", "location"),
], ids=["mapping-in-scalar", "bad-indentation"])
def test_yaml_syntax_error_reports_its_line(tmp_path: Path, broken_line: str, needle: str) -> None:
    text = "\n".join([
        "version: 1",
        "resources:",
        "  - kind: Hub",
        "    name: ft-hub",
        broken_line,
        "    description: fine",
        "",
    ])
    path = tmp_path / "main.yaml"
    path.write_text(text, encoding="utf-8")
    errors = load_errors(path)
    assert len(errors) == 1
    diagnostic = errors[0]
    assert diagnostic.code == "yaml-syntax"
    assert diagnostic.message.startswith("YAML syntax error")
    assert diagnostic.position is not None
    assert (diagnostic.position.file, diagnostic.position.line) == ("main.yaml", 5)
    assert diagnostic.position == Position("main.yaml", *locate(text, needle))


# -- 5. interpolation and variables ------------------------------------------------------

TYPED_VARIABLES = """
version: 1
variables:
  location: eastus2
  team: ml
  count: 3
  enabled: true
  deps: [ProviderRegistration.network]
  tags: {default: {team: ml, env: dev}}
resources:
  - kind: ProviderRegistration
    name: network
    namespace: Microsoft.Network
  - kind: Hub
    name: ft-hub
    location: ${var.location}
    tags: ${var.tags}
    depends_on: ${var.deps}
    protect: ${var.enabled}
    description: "team ${var.team} runs ${var.count} hubs (enabled=${var.enabled}) in ${var.location}"
"""


def test_whole_string_reference_keeps_the_variable_type(tmp_path: Path) -> None:
    """A map, a list and a boolean arrive as such, not as text."""
    manifest = load_ok(write(tmp_path, "main.yaml", TYPED_VARIABLES))
    hub = manifest.resources["Hub.ft-hub"]
    assert hub.attributes["tags"] == {"team": "ml", "env": "dev"}
    assert hub.spec.depends_on == ["ProviderRegistration.network"]
    assert hub.spec.protect is True


def test_whole_string_number_reference_stays_a_number(tmp_path: Path) -> None:
    """`description: ${var.count}` is the number 3, which a string field rejects, at that position."""
    path = write(tmp_path, "main.yaml", """
        version: 1
        variables:
          count: 3
        resources:
          - kind: Hub
            name: ft-hub
            location: eastus2
            description: ${var.count}
        """)
    diagnostic = only(load_errors(path), "description")
    assert "valid string" in diagnostic.message
    assert diagnostic.position == position(path, "${var.count}")
    assert diagnostic.address == "Hub.ft-hub"


def test_interpolator_whole_reference_returns_typed_values() -> None:
    """The Interpolator itself: whole references keep int, list and bool values."""
    problems: list[Diagnostic] = []
    interpolator = Interpolator({"n": 3, "items": [1, 2], "flag": False}, {}, problems)
    at = Position("x.yaml", 1, 1)
    assert interpolator.resolve("${var.n}", lambda _: at) == 3
    assert interpolator.resolve("${var.items}", lambda _: at) == [1, 2]
    assert interpolator.resolve("${var.flag}", lambda _: at) is False
    assert interpolator.resolve("n=${var.n}", lambda _: at) == "n=3"
    assert problems == []


def test_embedded_references_are_inserted_as_text(tmp_path: Path) -> None:
    manifest = load_ok(write(tmp_path, "main.yaml", TYPED_VARIABLES))
    assert attributes(manifest, "Hub.ft-hub")["description"] == \
        "team ml runs 3 hubs (enabled=true) in eastus2"


def test_embedded_list_reference_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", """
        version: 1
        variables:
          owners: [alice, bob]
        resources:
          - kind: Hub
            name: ft-hub
            location: eastus2
            description: owners ${var.owners}
        """)
    diagnostic = only(load_errors(path), "cannot be embedded")
    assert diagnostic.position == position(path, "owners ${var.owners}")
    assert diagnostic.address == "Hub.ft-hub"


ENV_MANIFEST = """
version: 1
variables:
  principal: ${env.FT_PRINCIPAL:-ml-engineer@contoso.com}
resources:
  - kind: Hub
    name: ft-hub
    location: ${env.FT_LOCATION}
    tags: {owner: "${env.FT_OWNER:-nobody}", note: "$${env.FT_OWNER}"}
  - kind: RoleAssignment
    name: developer
    principal: ${var.principal}
    role: Azure AI Developer
    scope: resource_group
"""


def test_env_references_read_the_env_argument(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", ENV_MANIFEST)
    manifest = load_ok(path, env={"FT_LOCATION": "East US 2", "FT_OWNER": "alice",
                                  "FT_PRINCIPAL": "bob"})
    hub = attributes(manifest, "Hub.ft-hub")
    assert hub["location"] == "eastus2"
    assert hub["tags"] == {"owner": "alice", "note": "${env.FT_OWNER}"}
    assert attributes(manifest, "RoleAssignment.developer")["principal"] == "bob"


def test_env_fallback_is_used_when_the_variable_is_unset(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", ENV_MANIFEST)
    manifest = load_ok(path, env={"FT_LOCATION": "westus"})
    assert attributes(manifest, "Hub.ft-hub")["tags"]["owner"] == "nobody"
    assert attributes(manifest, "RoleAssignment.developer")["principal"] == "ml-engineer@contoso.com"


def test_env_argument_replaces_the_process_environment(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With `env=` given, os.environ is not consulted."""
    monkeypatch.setenv("FT_LOCATION", "westus")
    path = write(tmp_path, "main.yaml", ENV_MANIFEST)
    diagnostic = only(load_errors(path, env={}), "FT_LOCATION")
    assert "not set" in diagnostic.message
    assert load_ok(path).resources["Hub.ft-hub"].attributes["location"] == "westus"


def test_unset_env_variable_is_an_error_at_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", ENV_MANIFEST)
    errors = load_errors(path, env={})
    diagnostic = only(errors, "environment variable FT_LOCATION is not set")
    assert diagnostic.position == position(path, "${env.FT_LOCATION}")
    assert diagnostic.address == "Hub.ft-hub"
    assert diagnostic.code == "interpolation"
    assert len(errors) == 1  # the failed value is not reported again as a schema error


def test_double_dollar_writes_a_literal_reference(tmp_path: Path) -> None:
    """`$${...}` is text, even for an undefined variable or an unset environment variable."""
    path = write(tmp_path, "main.yaml", """
        version: 1
        resources:
          - kind: Hub
            name: ft-hub
            location: eastus2
            description: "use $${var.undefined} and $${env.NOT_SET} literally"
            display_name: $${var.whole}
        """)
    hub = attributes(load_ok(path, env={}), "Hub.ft-hub")
    assert hub["description"] == "use ${var.undefined} and ${env.NOT_SET} literally"
    assert hub["display_name"] == "${var.whole}"


def test_undefined_variable_has_position_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", """
        version: 1
        variables:
          location: eastus2
        resources:
          - kind: Hub
            name: ft-hub
            location: ${var.locaton}
        """)
    errors = load_errors(path)
    diagnostic = only(errors, "undefined variable 'locaton'")
    assert "did you mean 'location'" in diagnostic.message
    assert diagnostic.position == position(path, "${var.locaton}")
    assert diagnostic.address == "Hub.ft-hub"
    assert len(errors) == 1


VARIABLES_MANIFEST = """
version: 1
variables:
  location: eastus2
  team: ml
  replicas: 1
  protect_hub: false
resources:
  - kind: Hub
    name: ft-hub
    location: ${var.location}
    protect: ${var.protect_hub}
    tags: {team: "${var.team}"}
    description: "${var.replicas} replicas"
"""


def test_variables_argument_coerces_strings_to_the_default_type(tmp_path: Path) -> None:
    """`variables=` (--var) strings become the type of the default: boolean and integer."""
    manifest = load_ok(write(tmp_path, "main.yaml", VARIABLES_MANIFEST),
                       variables={"protect_hub": "true", "replicas": "4", "team": "research"})
    assert manifest.variables["protect_hub"] is True
    assert manifest.variables["replicas"] == 4
    assert manifest.variables["team"] == "research"
    hub = manifest.resources["Hub.ft-hub"]
    assert hub.spec.protect is True
    assert hub.attributes["tags"] == {"team": "research"}
    assert hub.attributes["description"] == "4 replicas"


def test_variables_argument_rejects_a_value_of_the_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", VARIABLES_MANIFEST)
    errors = load_errors(path, variables={"protect_hub": "maybe"})
    assert "protect_hub" in only(errors, "boolean").message


def test_variables_argument_rejects_an_undeclared_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", VARIABLES_MANIFEST)
    diagnostic = only(load_errors(path, variables={"locaton": "westus"}), "locaton")
    assert "did you mean 'location'" in diagnostic.message


def test_var_files_later_files_win_and_variables_win_over_files(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", VARIABLES_MANIFEST)
    first = write(tmp_path, "first.yaml", """
        team: from-first
        location: westus
        replicas: 2
        """)
    second = write(tmp_path, "second.yaml", """
        team: from-second
        replicas: 3
        """)
    manifest = load_ok(path, var_files=[first, second])
    assert manifest.variables["team"] == "from-second"
    assert manifest.variables["location"] == "westus"
    assert manifest.variables["replicas"] == 3
    assert attributes(manifest, "Hub.ft-hub")["location"] == "westus"

    manifest = load_ok(path, var_files=[first, second], variables={"team": "from-cli"})
    assert manifest.variables["team"] == "from-cli"
    assert manifest.variables["replicas"] == 3


def test_undeclared_variable_in_a_var_file_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", VARIABLES_MANIFEST)
    var_file = write(tmp_path, "prod.yaml", """
        team: prod
        locaton: westus
        """)
    diagnostic = only(load_errors(path, var_files=[var_file]), "locaton")
    assert diagnostic.position == position(var_file, "locaton")
    assert diagnostic.position.file == "prod.yaml"
    assert "not declared" in diagnostic.message
    assert "did you mean 'location'" in diagnostic.message


def test_missing_var_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", VARIABLES_MANIFEST)
    assert "nowhere.yaml" in only(load_errors(path, var_files=[tmp_path / "nowhere.yaml"]),
                                  "not found").message


def test_variable_without_default_or_value_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", """
        version: 1
        variables:
          principal: {type: string, description: who fine-tunes}
        resources:
          - kind: RoleAssignment
            name: developer
            principal: ${var.principal}
            role: Azure AI Developer
            scope: resource_group
        """)
    diagnostic = only(load_errors(path), "has no value")
    assert "'principal'" in diagnostic.message
    assert diagnostic.position == position(path, "principal: {type")
    assert diagnostic.hint is not None and "--var principal=" in diagnostic.hint
    manifest = load_ok(path, variables={"principal": "alice"})
    assert attributes(manifest, "RoleAssignment.developer")["principal"] == "alice"


# -- 6. a directory of manifest files ----------------------------------------------------

MAIN_FILE = """
version: 1
backend:
  type: local
variables:
  location: eastus2
resources:
  - kind: ProviderRegistration
    name: network
    namespace: Microsoft.Network
  - kind: Hub
    name: ft-hub
    location: ${var.location}
"""


def test_directory_files_are_merged(tmp_path: Path) -> None:
    """Resources from both files; a variable declared in one file is used in the other."""
    directory = tmp_path / "stack"
    write(directory, "main.yaml", MAIN_FILE)
    write(directory, "projects.yaml", """
        variables:
          team: ml
        resources:
          - kind: Project
            name: xbox-support
            hub: ft-hub
            tags: {team: "${var.team}", region: "${var.location}"}
        """)
    write(directory, "README.md", "not a manifest: ignored\n")
    manifest = load_ok(directory)
    assert list(manifest.resources) == ["ProviderRegistration.network", "Hub.ft-hub",
                                        "Project.xbox-support"]
    assert attributes(manifest, "Project.xbox-support")["tags"] == {"team": "ml", "region": "eastus2"}
    assert manifest.graph.dependencies("Project.xbox-support") == ["Hub.ft-hub"]
    assert len(manifest.files) == 2


def test_directory_duplicate_variable_names_the_first_location(tmp_path: Path) -> None:
    directory = tmp_path / "stack"
    main = write(directory, "main.yaml", MAIN_FILE)
    other = write(directory, "other.yaml", """
        variables:
          location: westus
        """)
    diagnostic = only(load_errors(directory), "declared twice")
    assert "'location'" in diagnostic.message
    assert f"first at stack/{main.name}:{':'.join(map(str, locate(source(main), 'location:')))}" \
        in diagnostic.message
    assert diagnostic.position == Position("stack/other.yaml", *locate(source(other), "location"))


def test_directory_second_backend_names_the_first_location(tmp_path: Path) -> None:
    directory = tmp_path / "stack"
    main = write(directory, "main.yaml", MAIN_FILE)
    other = write(directory, "other.yaml", """
        backend:
          type: local
        """)
    diagnostic = only(load_errors(directory), "backend is declared twice")
    assert diagnostic.position == Position("stack/other.yaml", *locate(source(other), "backend:"))
    first = Position("stack/main.yaml", *locate(source(main), "backend:"))
    assert f"(first at {first})" in diagnostic.message


# -- 7. the `validate` command -----------------------------------------------------------

VALID_MANIFEST = """
version: 1
backend:
  type: local
variables:
  location: East US 2
resources:
  - kind: ProviderRegistration
    name: network
    namespace: Microsoft.Network
  - kind: Hub
    name: ft-hub
    location: ${var.location}
    tags: {team: ml-platform}
  - kind: Project
    name: xbox-support
    hub: ft-hub
  - kind: RoleAssignment
    name: ml-engineer
    principal: ml-engineer@contoso.com
    role: Azure AI Developer
    scope: {project: xbox-support}
"""

INVALID_MANIFEST = """
version: 1
resources:
  - kind: Hub
    name: ft-hub
    locaton: eastus2
  - kind: Hub
    name: main-hub
    location: eastus2
  - kind: Hubb
    name: spare
  - kind: Project
    name: xbox-support
    hub: main-hubb
  - kind: RoleAssignment
    name: developer
    principal: me
    role: Azure AI Develper
    scope: {hub: main-hub}
"""

# (needle in INVALID_MANIFEST, address, message fragment)
INVALID_EXPECTED = [
    ("locaton", "Hub.ft-hub", "did you mean 'location'"),
    ("Hubb", "Hubb.spare", "did you mean 'Hub'"),
    ("main-hubb", "Project.xbox-support", "did you mean 'main-hub'"),
    ("Azure AI Develper", "RoleAssignment.developer", "did you mean 'Azure AI Developer'"),
]

ERROR_LINE = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?P<column>\d+): error: "
                        r"(?P<address>[A-Za-z]+\.[A-Za-z0-9][A-Za-z0-9_-]*): (?P<message>.+)$")


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m foundryctl ARGS` as a real process, without colour."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE")}
    env.update(NO_COLOR="1", COLUMNS="200", PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "foundryctl", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def test_cli_validate_valid_manifest(tmp_path: Path) -> None:
    write(tmp_path, "main.yaml", VALID_MANIFEST)
    result = run_cli(tmp_path, "validate", "-f", "main.yaml")
    assert result.returncode == 0, result.stderr
    assert "Success!" in result.stdout
    assert "4 resources" in result.stdout
    assert_no_traceback(result)


def test_cli_validate_reports_every_error_line(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", INVALID_MANIFEST)
    result = run_cli(tmp_path, "validate", "-f", "main.yaml")
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "Success!" not in result.stdout
    error_lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    parsed = [ERROR_LINE.match(line) for line in error_lines]
    assert all(parsed), "every error line must read FILE:LINE:COL: error: Kind.name: message\n" \
        + result.stderr
    got = {(m["file"], int(m["line"]), int(m["column"]), m["address"]) for m in parsed if m}
    wanted = {("main.yaml", *locate(source(path), needle), address)
              for needle, address, _ in INVALID_EXPECTED}
    assert got == wanted, result.stderr
    for needle, address, fragment in INVALID_EXPECTED:
        line, column = locate(source(path), needle)
        assert any(m["line"] == str(line) and m["column"] == str(column) and fragment in m["message"]
                   for m in parsed if m), f"{address}: {fragment}"
    assert f"{len(INVALID_EXPECTED)} error(s)" in result.stderr


def test_cli_validate_yaml_syntax_error_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", """
        version: 1
        resources:
          - kind: Hub
            name: ft-hub
            location: eastus2: westus
        """)
    result = run_cli(tmp_path, "validate", "-f", "main.yaml")
    assert result.returncode == 1
    assert_no_traceback(result)
    line, column = locate(source(path), ": westus")
    assert f"main.yaml:{line}:{column}: error: YAML syntax error" in result.stderr


def test_cli_validate_json_for_invalid_manifest(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", INVALID_MANIFEST)
    result = run_cli(tmp_path, "validate", "-f", "main.yaml", "--format", "json")
    assert result.returncode == 1
    assert_no_traceback(result)
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["error_count"] == len(INVALID_EXPECTED)
    diagnostics = report["diagnostics"]
    assert len(diagnostics) == len(INVALID_EXPECTED)
    for entry in diagnostics:
        assert {"file", "line", "column", "address", "code", "message"} <= set(entry), entry
    got = {(d["file"], d["line"], d["column"], d["address"]) for d in diagnostics}
    assert got == {("main.yaml", *locate(source(path), needle), address)
                   for needle, address, _ in INVALID_EXPECTED}
    codes = {d["address"]: d["code"] for d in diagnostics}
    assert codes["Hubb.spare"] == "unknown-kind"
    assert codes["Project.xbox-support"] == "dangling-reference"


def test_cli_validate_json_for_valid_manifest(tmp_path: Path) -> None:
    write(tmp_path, "main.yaml", VALID_MANIFEST)
    result = run_cli(tmp_path, "validate", "-f", "main.yaml", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert report["error_count"] == 0
    assert report["diagnostics"] == []


def test_cli_var_and_var_file_options(tmp_path: Path) -> None:
    """--var supplies a variable with no default; --var-file too; without either it fails."""
    write(tmp_path, "main.yaml", """
        version: 1
        variables:
          principal: {type: string}
        resources:
          - kind: RoleAssignment
            name: developer
            principal: ${var.principal}
            role: Azure AI Developer
            scope: resource_group
        """)
    write(tmp_path, "vars.yaml", "principal: alice\n")
    missing = run_cli(tmp_path, "validate", "-f", "main.yaml")
    assert missing.returncode == 1 and "has no value" in missing.stderr
    assert_no_traceback(missing)
    for extra in (["--var", "principal=alice"], ["--var-file", "vars.yaml"]):
        result = run_cli(tmp_path, "validate", "-f", "main.yaml", *extra)
        assert result.returncode == 0, result.stderr
        assert "Success!" in result.stdout


def test_cli_debug_is_a_global_option(tmp_path: Path) -> None:
    write(tmp_path, "main.yaml", VALID_MANIFEST)
    result = run_cli(tmp_path, "--debug", "validate", "-f", "main.yaml")
    assert result.returncode == 0, result.stderr
    assert "Success!" in result.stdout
    write(tmp_path, "bad.yaml", INVALID_MANIFEST)
    assert run_cli(tmp_path, "--debug", "validate", "-f", "bad.yaml").returncode != 0


# -- 8. resource kinds -------------------------------------------------------------------


def hub_manifest(tmp_path: Path, name: str = "ft-hub", location: str = "eastus2") -> Path:
    """A manifest with one Hub."""
    return write(tmp_path, "main.yaml", f"""
        version: 1
        resources:
          - kind: Hub
            name: {name}
            location: {location}
        """)


@pytest.mark.parametrize("written", ["East US 2", "eastus2", "EASTUS2", "eastUS 2"])
def test_hub_location_is_normalised(tmp_path: Path, written: str) -> None:
    manifest = load_ok(hub_manifest(tmp_path, location=written))
    assert attributes(manifest, "Hub.ft-hub")["location"] == "eastus2"


def test_unknown_region_suggests_a_near_one(tmp_path: Path) -> None:
    path = hub_manifest(tmp_path, location="eastus22")
    diagnostic = only(load_errors(path), "unknown Azure region")
    assert "'eastus22'" in diagnostic.message
    assert "did you mean 'eastus2'" in diagnostic.message
    assert diagnostic.position == position(path, "eastus22")
    assert diagnostic.address == "Hub.ft-hub"


def test_too_short_workspace_name_explains_the_rule(tmp_path: Path) -> None:
    path = hub_manifest(tmp_path, name="ab")
    diagnostic = only(load_errors(path), "invalid name 'ab'")
    assert "3-33" in diagnostic.message
    assert "letters, digits" in diagnostic.message
    assert diagnostic.position == position(path, "ab\n")
    assert diagnostic.address == "Hub.ab"


def role_manifest(tmp_path: Path, role: str = "Azure AI Developer",
                  scope: str = "resource_group") -> Path:
    """A hub, a project, and one role assignment with the given role and scope."""
    return write(tmp_path, "main.yaml", f"""
        version: 1
        resources:
          - kind: Hub
            name: ft-hub
            location: eastus2
          - kind: Project
            name: xbox-support
            hub: ft-hub
          - kind: RoleAssignment
            name: developer
            principal: ml-engineer@contoso.com
            role: {role}
            scope: {scope}
        """)


@pytest.mark.parametrize("role", [
    "Azure AI Developer",
    "azure ai developer",
    "AZURE AI DEVELOPER",
    "64702f94-c441-49e6-a78b-ef80e0188fee",
    "64702F94-C441-49E6-A78B-EF80E0188FEE",
])
def test_role_accepts_guid_and_any_case(tmp_path: Path, role: str) -> None:
    manifest = load_ok(role_manifest(tmp_path, role=role))
    assert attributes(manifest, "RoleAssignment.developer")["role"] == "Azure AI Developer"


@pytest.mark.parametrize("scope, serialised, dependency", [
    ("resource_group", {"resource_group": True}, None),
    ("{resource_group: true}", {"resource_group": True}, None),
    ("{hub: ft-hub}", {"hub": "ft-hub"}, "Hub.ft-hub"),
    ("{project: xbox-support}", {"project": "xbox-support"}, "Project.xbox-support"),
])
def test_role_assignment_scopes(tmp_path: Path, scope: str, serialised: dict[str, Any],
                                dependency: str | None) -> None:
    manifest = load_ok(role_manifest(tmp_path, scope=scope))
    assert attributes(manifest, "RoleAssignment.developer")["scope"] == serialised
    expected = [dependency] if dependency else []
    assert manifest.graph.dependencies("RoleAssignment.developer") == expected


@pytest.mark.parametrize("scope", [
    "{hub: ft-hub, project: xbox-support}",
    "{resource_group: true, hub: ft-hub}",
    "{}",
])
def test_role_assignment_scope_must_be_exactly_one(tmp_path: Path, scope: str) -> None:
    path = role_manifest(tmp_path, scope=scope)
    errors = load_errors(path)
    diagnostic = only(errors, "exactly one of")
    assert diagnostic.position == position(path, scope)
    assert diagnostic.address == "RoleAssignment.developer"
    assert len(errors) == 1


def test_role_assignment_scope_unknown_key_suggests(tmp_path: Path) -> None:
    path = role_manifest(tmp_path, scope="{hubb: ft-hub}")
    diagnostic = only(load_errors(path), "unknown key 'hubb'")
    assert "did you mean 'hub'" in diagnostic.message
    assert diagnostic.position == position(path, "hubb")


# -- 9. the graph and the fingerprint ----------------------------------------------------

GRAPH_MANIFEST = """
version: 1
# the subscription prerequisites come first
resources:
  - kind: ProviderRegistration
    name: network
    namespace: Microsoft.Network
  - kind: ProviderRegistration
    name: storage
    namespace: Microsoft.Storage
  - kind: Hub
    name: ft-hub
    location: eastus2
    tags: {team: ml, env: dev}
  - kind: Hub
    name: ops-hub
    location: westus
    depends_on: [Hub.ft-hub]
  - kind: Project
    name: xbox-support
    hub: ft-hub
  - kind: RoleAssignment
    name: hub-admin
    principal: alice
    role: Azure AI Administrator
    scope: {hub: ops-hub}
  - kind: RoleAssignment
    name: developer
    principal: bob
    role: Azure AI Developer
    scope: {project: xbox-support}
"""


def test_graph_edges(tmp_path: Path) -> None:
    graph = load_ok(write(tmp_path, "main.yaml", GRAPH_MANIFEST)).graph
    registrations = {"ProviderRegistration.network", "ProviderRegistration.storage"}
    assert set(graph.dependencies("Hub.ft-hub")) == registrations
    assert set(graph.dependencies("Hub.ops-hub")) == registrations | {"Hub.ft-hub"}
    assert graph.dependencies("Project.xbox-support") == ["Hub.ft-hub"]
    assert graph.dependencies("RoleAssignment.hub-admin") == ["Hub.ops-hub"]
    assert graph.dependencies("RoleAssignment.developer") == ["Project.xbox-support"]
    assert graph.dependencies("ProviderRegistration.network") == []
    order = graph.topological_order()
    for node, dependency in graph.edges():
        assert order.index(dependency) < order.index(node)


def test_depends_on_adds_an_edge(tmp_path: Path) -> None:
    text = GRAPH_MANIFEST.replace("    hub: ft-hub\n",
                                  "    hub: ft-hub\n    depends_on: [RoleAssignment.hub-admin]\n")
    graph = load_ok(write(tmp_path, "main.yaml", text)).graph
    assert set(graph.dependencies("Project.xbox-support")) == {"Hub.ft-hub", "RoleAssignment.hub-admin"}


def test_dangling_depends_on_is_an_error(tmp_path: Path) -> None:
    text = GRAPH_MANIFEST.replace("depends_on: [Hub.ft-hub]", "depends_on: [Hub.ft-hubb]")
    path = write(tmp_path, "main.yaml", text)
    diagnostic = only(load_errors(path), "depends_on 'Hub.ft-hubb'")
    assert "did you mean 'ft-hub'" in diagnostic.message
    assert diagnostic.position == position(path, "Hub.ft-hubb")
    assert diagnostic.address == "Hub.ops-hub"


def fingerprint(tmp_path: Path, name: str, text: str) -> str:
    """The fingerprint of `text` loaded as tmp_path/name."""
    return load_ok(write(tmp_path, name, text)).fingerprint


def test_fingerprint_ignores_formatting_and_comments(tmp_path: Path) -> None:
    reformatted = (GRAPH_MANIFEST
                   .replace("# the subscription prerequisites come first\n", "")
                   .replace("    tags: {team: ml, env: dev}\n",
                            "    tags:   # who owns it\n      team: ml\n      env: 'dev'\n")
                   .replace("    location: westus\n", "    location: \"westus\"   # cheap\n\n"))
    assert reformatted != GRAPH_MANIFEST
    assert fingerprint(tmp_path, "a.yaml", GRAPH_MANIFEST) == fingerprint(tmp_path, "b.yaml", reformatted)


@pytest.mark.parametrize("old, new", [
    ("env: dev", "env: prod"),
    ("location: westus", "location: westus2"),
    ("principal: bob", "principal: carol"),
    ("depends_on: [Hub.ft-hub]", "depends_on: []"),
], ids=["tag", "location", "principal", "dependency"])
def test_fingerprint_changes_with_an_attribute(tmp_path: Path, old: str, new: str) -> None:
    assert old in GRAPH_MANIFEST
    changed = GRAPH_MANIFEST.replace(old, new)
    assert fingerprint(tmp_path, "a.yaml", GRAPH_MANIFEST) != fingerprint(tmp_path, "b.yaml", changed)


def test_scalars_resolve_as_pyyaml_does() -> None:
    """The event-stream builder types every scalar the way yaml.safe_load would."""
    import yaml

    from foundryctl.manifest.yamlsource import load_yaml_documents

    text = ("a: 0777\nb: 0010\nc: 0\nd: 12\ne: 0x1F\nf: 1_000\ng: -3\nh: 1.5e3\ni: .inf\nj: yes\n"
            "k: Off\nl: ~\nm: ''\nn: '0777'\no: 2026-11-24\np:\nq: !!str 5\nr: [1, two, 3.0]\n")
    documents, problems = load_yaml_documents(text, "scalars.yaml")
    assert problems == []
    expected = yaml.safe_load(text)
    expected["o"] = "2026-11-24"  # dates are kept as text on purpose
    assert documents[0].data == expected


REGION_MANIFEST = """\
version: 1
resources:
  - kind: Hub
    name: hub
    location: {location}
  - kind: Project
    name: prj
    hub: hub
  - kind: Dataset
    name: chat
    project: prj
    path: chat.jsonl
  - kind: FineTuneJob
    name: agent
    project: prj
    base_model: {model}
    training_data: chat
  - kind: Deployment
    name: agent
    project: prj
    model: {{job: agent}}
"""


@pytest.mark.parametrize(("location", "model", "expected"), [
    ("swedencentral", "Phi-3-mini-4k-instruct", {("FineTuneJob.agent", "eastus2")}),
    ("eastus2", "Phi-3-mini-4k-instruct", set()),
    ("westeurope", "Phi-4-mini-instruct", {("FineTuneJob.agent", "eastus, eastus2, northcentralus"),
                                           ("Deployment.agent", "eastus, eastus2, northcentralus")}),
    ("swedencentral", "Phi-4-mini-instruct", {("FineTuneJob.agent", "eastus, eastus2, northcentralus")}),
    ("westeurope", "SmolLM2-135M-Instruct", set()),  # not an Azure catalog model: nothing known
])
def test_catalog_region_availability_is_checked_offline(tmp_path: Path, location: str, model: str,
                                                        expected: set) -> None:
    rows = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
            for i in range(12)]
    (tmp_path / "chat.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "foundry.yaml").write_text(REGION_MANIFEST.format(location=location, model=model))
    manifest = load_manifest(tmp_path / "foundry.yaml")
    found = {(d.address, d.message.split("only in ")[1][:len(e)]) for d in manifest.warnings
             if d.code == "region-unavailable" for e in [next((x[1] for x in expected if x[0] == d.address), "")]}
    assert found == expected
    assert all(not d.is_error for d in manifest.warnings if d.code == "region-unavailable")


# -- 10. hostile input: bounded, located, never a bug -------------------------------------

def test_deep_nesting_is_a_located_error(tmp_path: Path) -> None:
    """500 levels used to raise RecursionError; past 64 the file is refused where it gets too deep."""
    path = write(tmp_path, "main.yaml", "version: 1\nvariables:\n  x: " + "[" * 500 + "]" * 500 + "\n")
    error = only(load_errors(path), "nested more than 64 levels")
    # The document and `variables` are two levels, so the 63rd bracket is the 65th level.
    assert error.position == Position("main.yaml", 3, 6 + 62) and error.code == "yaml-too-deep"
    shallow = write(tmp_path, "ok.yaml", "version: 1\nvariables:\n  x: " + "[" * 60 + "]" * 60 + "\n")
    load_ok(shallow)


def test_an_integer_of_thousands_of_digits_is_a_located_error(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", "version: 1\nvariables:\n  x: " + "9" * 5000 + "\n")
    error = only(load_errors(path), "integer of 5,000 characters")
    assert error.position == position(path, "999")
    assert len(load_errors(path)) == 1  # no second, schema error about the same value


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Nine aliases of nine aliases, nine levels deep: 9**9 values from about 600 bytes."""
    levels = ["  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "version: 1\nvariables:\n  bomb:\n    default:\n" + "\n".join("    " + x for x in levels) + "\n"
    text += "resources:\n  - {kind: Hub, name: hub-one, location: eastus2, tags: ${var.bomb}}\n"
    path = write(tmp_path, "main.yaml", text)
    started = time.process_time()
    error = only(load_errors(path), "holds more than 1,000,000 values")
    assert time.process_time() - started < 5
    line = next(i for i, x in enumerate(text.splitlines(), 1) if x.strip().startswith("- &a6"))
    assert error.position is not None and error.position.line == line  # where the count passes the limit


def test_a_shared_variable_counts_once_per_use(tmp_path: Path) -> None:
    """A list that is fine once is refused when references insert it past the budget."""
    big = "[" + ", ".join(["[" + ", ".join(["x"] * 100) + "]"] * 1000) + "]"  # about 101,000 values
    text = f"version: 1\nvariables:\n  big: {big}\nresources:\n"
    text += "".join(f"  - kind: Hub\n    name: hub-{i:02d}\n    location: eastus2\n    tags: ${{var.big}}\n"
                    for i in range(12))
    path = write(tmp_path, "main.yaml", text)
    errors = load_errors(path)
    budget = [d for d in errors if "add more than 1,000,000 values" in d.message]
    assert budget and budget[0].address == "Hub.hub-09" and budget[0].position == position(path, "${var.big}", 10)


def test_unclosed_interpolation_runs_are_linear(tmp_path: Path) -> None:
    """100,000 `${` in one string used to take quadratic time."""
    path = write(tmp_path, "main.yaml", "version: 1\nvariables:\n  x: '" + "${" * 100_000 + "'\n")
    started = time.process_time()
    manifest = load_ok(path)
    assert time.process_time() - started < 2
    assert manifest.variables["x"] == "${" * 100_000


def test_bad_references_are_reported_a_few_times_per_value(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", "version: 1\nresources:\n  - {kind: Hub, name: hub-one, location: eastus2, "
                                        "description: '" + "${nope}" * 1000 + "'}\n")
    errors = [d for d in load_errors(path) if d.code == "interpolation"]
    assert len(errors) == 5 and all(d.position == position(path, "'${nope}") for d in errors)


def test_nul_in_state_and_backend_paths_is_a_located_error(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", 'version: 1\nbackend:\n  type: local\n  path: "lo\\0cal"\n'
                                        'state:\n  path: "st\\0ate.db"\n')
    errors = load_errors(path)
    assert {d.position for d in errors} == {position(path, '"lo'), position(path, '"st')}
    assert all("NUL" in d.message for d in errors)


@pytest.mark.parametrize("tagged", ["!!float abc", "!!int xyz", "!!bool maybe", "!!binary 'a'"])
def test_bad_explicit_tags_are_located_errors(tmp_path: Path, tagged: str) -> None:
    path = write(tmp_path, "main.yaml", f"version: 1\nvariables:\n  x: {tagged}\n")
    assert only(load_errors(path), "invalid value").position == position(path, tagged)


def test_a_huge_manifest_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "main.yaml"
    path.write_bytes(b"version: 1\n" + b"#" * (16 * 1024 * 1024))
    error = only(load_errors(path), "limited to 16 MiB")
    assert error.position == Position("main.yaml", 1, 1)


@pytest.mark.parametrize(("value", "expected"), [
    ("epochs=abc", "--var epochs=abc: variable 'epochs' is an integer (the type of its default, 3); 'abc' is not one"),
    ("epochs=1.5", "'1.5' is not one"),
    ("epochs=" + "9" * 5000, "variable 'epochs' is an integer"),
    ("rate=inf", "--var rate=inf: variable 'rate' is a number (its declared type); 'inf' is not one"),
    ("flag=maybe", "variable 'flag' is a boolean (true or false) (its declared type); 'maybe' is not one"),
    ("tags=[1", "variable 'tags' is a map such as {key: value} (its declared type); '[1' is not valid YAML"),
    ("tags=" + "[" * 100 + "]" * 100, "nested more than 64 levels"),
])
def test_var_type_errors_name_variable_value_and_type(tmp_path: Path, value: str, expected: str) -> None:
    path = write(tmp_path, "main.yaml", """
        version: 1
        variables:
          epochs: 3
          rate: {type: number, default: 0.1}
          flag: {type: boolean, default: true}
          tags: {type: map, default: {}}
        """)
    name, _, text = value.partition("=")
    errors = load_errors(path, variables={name: text})
    error = only(errors, expected)
    assert len(errors) == 1  # not also "has no value"
    assert error.position == position(path, f"{name}:") and error.code == "invalid-value"


def test_var_values_of_the_right_type_are_coerced(tmp_path: Path) -> None:
    path = write(tmp_path, "main.yaml", """
        version: 1
        variables:
          epochs: 3
          rate: {type: number}
          tags: {type: map, default: {}}
        """)
    manifest = load_ok(path, variables={"epochs": "1_000", "rate": "2e-5", "tags": "{team: ml}"})
    assert manifest.variables == {"epochs": 1000, "rate": 2e-5, "tags": {"team": "ml"}}


def test_cli_validate_json_is_json_for_a_huge_integer(tmp_path: Path) -> None:
    """It used to print an int-conversion bug message instead of JSON."""
    write(tmp_path, "main.yaml", "version: 1\nvariables:\n  x: " + "9" * 5000 + "\n")
    result = run_cli(tmp_path, "validate", "-f", "main.yaml", "--format", "json")
    assert result.returncode == 1 and "This is a bug" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert [(d["file"], d["line"], d["column"]) for d in report["diagnostics"]] == [("main.yaml", 3, 6)]


def test_cli_prints_user_text_literally(tmp_path: Path) -> None:
    """Rich markup and emoji codes in values are printed as written."""
    write(tmp_path, "main.yaml", "version: 1\nresources:\n  - kind: Hub\n    name: 'root:x:0:0 [bold]b[/bold]'\n"
                                 "    location: eastus2\n")
    result = run_cli(tmp_path, "validate", "-f", "main.yaml")
    assert result.returncode == 1
    assert "root:x:0:0 [bold]b[/bold]" in result.stderr and "❌" not in result.stderr


def test_the_value_limit_covers_all_files_of_a_directory(tmp_path: Path) -> None:
    """Twelve files of 100,000 values each are over the limit together."""
    write(tmp_path, "m/main.yaml", "version: 1\n")
    for i in range(12):
        write(tmp_path, f"m/part{i:02d}.yaml", f"variables:\n  v{i}: [" + ", ".join(["1"] * 100_000) + "]\n")
    error = only(load_errors(tmp_path / "m"), "holds more than 1,000,000 values")
    assert error.position is not None and error.position.file.endswith("part09.yaml")
