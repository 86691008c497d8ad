"""Dataset: a chat-completion JSONL file registered as a versioned data asset in a project.

The version is the sha256 of the file's bytes, so editing the file is an update to a new
version; the planner shows the example counts before and after. Validation data is a second
file or a deterministic split of this one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from foundryctl.errors import Diagnostic, Position
from foundryctl.kinds.base import Kind, Ref, Spec
from foundryctl.kinds.project import inside_project

if TYPE_CHECKING:
    from foundryctl.datasets import DatasetReport
    from foundryctl.manifest.model import Manifest, ResourceDecl

# Validation data is registered as a second data asset named NAME + this.
VALIDATION_SUFFIX = "-validation"
# Diagnostics per category that `foundryctl validate` prints for one file; the rest are
# counted (and `foundryctl data validate FILE` lists them all).
SHOWN_PER_CATEGORY = 5


class SplitValidation(BaseModel):
    """Hold out a fraction of the examples, chosen by a seeded hash of each example."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: float = Field(gt=0, le=0.5, description="Fraction of examples held out (0 < split <= 0.5).")
    seed: int = Field(0, ge=0, lt=2**63, description="Seed of the split; same file and seed, same split.")


class FileValidation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="A JSONL file of validation examples (relative to the manifest).")


class DatasetSpec(Spec):
    kind: Literal["Dataset"]
    project: Annotated[str, Ref("Project", containment=True),
                       Field(description="Name of the Project the data asset is registered in.")]
    path: str = Field(min_length=1, description="Training JSONL file, relative to the manifest file.")
    task: Literal["chat_completion", "text_classification"] = Field("chat_completion", description=(
        "Data format: chat_completion (`messages` conversations) or text_classification "
        "(`{\"text\": ..., \"label\": ...}` a line)."))
    labels: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=2, description=(
        "text_classification: the label set, in the order of the classifier's outputs; a label "
        "outside it is an error. Default: the labels the training file has, sorted."))
    validation: SplitValidation | FileValidation | None = Field(
        None, description="{split: 0.1, seed: 7} or {path: FILE}; none: no validation data.")
    description: str = ""
    allow_outside_root: bool = Field(
        False, description="Read data files outside the manifest's directory (`../`, absolute paths, "
                           "symlinks that lead out). Off: such a path is an error, so a manifest "
                           "cannot make validate read and quote an arbitrary file.")


class Dataset(Kind):
    name = "Dataset"
    spec = DatasetSpec
    summary = ("A chat-completion JSONL file, validated offline and registered as a data asset "
               "whose version is the sha256 of its content.")
    force_new = frozenset({"project"})
    needs_role = True  # writing data assets is a data-plane operation on the project
    report_options: ClassVar[dict[str, Any]] = {"count_tokens": False}

    @classmethod
    def scope_chain(cls, decl: ResourceDecl, manifest: Manifest) -> list[str]:
        return inside_project(decl.spec.project, manifest)  # type: ignore[attr-defined]

    @classmethod
    def desired_attributes(cls, decl: ResourceDecl) -> dict[str, Any]:
        spec: DatasetSpec = decl.spec  # type: ignore[assignment]
        attributes = cls.attributes(spec)
        del attributes["allow_outside_root"]  # how the manifest is checked, not what is registered
        if attributes.get("labels") is None:  # chat datasets (and state written before labels) have none
            attributes.pop("labels", None)
        # Paths as the backend resolves them: relative to the manifest's root directory.
        attributes["path"] = root_relative(decl, spec.path)
        if isinstance(spec.validation, FileValidation):
            attributes["validation"] = {"path": root_relative(decl, spec.validation.path)}
        training, validation = cls.reports(decl)
        attributes["version"] = training.sha256 if training else None
        attributes["examples"] = training.examples if training else None
        if validation is not None:
            attributes["validation_version"] = validation.sha256
            attributes["validation_examples"] = validation.examples
        elif training is not None and training.split is not None:
            attributes["validation_examples"] = training.split.validation_examples
        return attributes

    @classmethod
    def describe_changes(cls, before: dict[str, Any] | None, after: dict[str, Any],
                         decl: ResourceDecl | None = None) -> list[str]:
        if before is None:
            return []
        notes = []
        if before.get("version") != after.get("version"):
            notes.append(f"content changed: {_count(before.get('examples'))} -> "
                         f"{_count(after.get('examples'))} examples")
        if before.get("validation") != after.get("validation") and "split" in (after.get("validation") or {}):
            notes.append("validation split changed")
        if before.get("validation_version") != after.get("validation_version") and after.get("validation_version"):
            notes.append(f"validation content changed: {_count(before.get('validation_examples'))} -> "
                         f"{_count(after.get('validation_examples'))} examples")
        return notes

    @classmethod
    def reports(cls, decl: ResourceDecl) -> tuple[DatasetReport | None, DatasetReport | None]:
        """Reports of the training and validation files (None where a file cannot be read)."""
        from foundryctl.datasets import ValidationOptions
        from foundryctl.datasets.cache import report_for

        spec: DatasetSpec = decl.spec  # type: ignore[assignment]
        split = ((spec.validation.split, spec.validation.seed)
                 if isinstance(spec.validation, SplitValidation) else None)
        task = {"task": spec.task, "labels": tuple(spec.labels) if spec.labels else None}
        try:
            training = report_for(data_path(decl, spec.path),
                                  ValidationOptions(split=split, **task, **cls.report_options))
        except OSError:
            training = None
        validation = None
        if isinstance(spec.validation, FileValidation):
            try:
                validation = report_for(data_path(decl, spec.validation.path),
                                        ValidationOptions(role="validation", **task, **cls.report_options))
            except OSError:
                validation = None
        return training, validation

    @classmethod
    def check(cls, decl: ResourceDecl, manifest: Manifest) -> list[Diagnostic]:
        spec: DatasetSpec = decl.spec  # type: ignore[assignment]
        out: list[Diagnostic] = []
        collision = manifest.resources.get(f"Dataset.{decl.name}{VALIDATION_SUFFIX}")
        if collision is not None and spec.validation is not None:
            out.append(Diagnostic.error(
                f"the validation data of {decl.address} is registered as data asset "
                f"'{decl.name}{VALIDATION_SUFFIX}', which {collision.address} also names",
                collision.position, collision.address, code="name-conflict",
                hint="rename one of the two datasets"))
        if spec.labels is not None and spec.task != "text_classification":
            out.append(Diagnostic.error(
                "`labels` is for `task: text_classification` datasets", decl.position_of(("labels",)),
                decl.address, code="labels-without-classification",
                hint="set `task: text_classification`, or remove `labels`"))
        if spec.labels is not None and len(set(spec.labels)) != len(spec.labels):
            repeated = sorted({label for label in spec.labels if spec.labels.count(label) > 1})
            out.append(Diagnostic.error(f"`labels` repeats {', '.join(map(repr, repeated))}",
                                        decl.position_of(("labels",)), decl.address, code="duplicate-label"))
        if not manifest.check_files:
            return out
        files = [(("path",), spec.path)]
        if isinstance(spec.validation, FileValidation):
            files.append((("validation", "path"), spec.validation.path))
        for where, written in files:
            try:
                path = data_path(decl, written)
                is_file = path.is_file()
            except OutsideRootError as exc:
                out.append(Diagnostic.error(str(exc), decl.position_of(where), decl.address,
                                            code="path-outside-root", hint=exc.hint))
                continue
            except (OSError, ValueError) as exc:  # a name too long, a loop of symlinks
                out.append(Diagnostic.error(f"cannot use the path {_short(written)}: {exc}",
                                            decl.position_of(where), decl.address, code="io"))
                continue
            if not is_file:
                out.append(Diagnostic.error(
                    f"{'no such file' if not path.exists() else 'not a file'}: {written} "
                    f"(resolved to {path})", decl.position_of(where), decl.address, code="io",
                    hint="paths are relative to the manifest file that declares the dataset"))
        if out:
            return out
        if len(files) == 2 and data_path(decl, spec.path).resolve() == data_path(decl, files[1][1]).resolve():
            out.append(Diagnostic.error("the validation file is the training file", decl.position_of(
                ("validation", "path")), decl.address, code="validation-is-training",
                hint="use `validation: {split: 0.1, seed: 0}` to hold out part of one file"))
        training, validation = cls.reports(decl)
        for (where, written), report in zip(files, (training, validation)):
            if report is None:
                out.append(Diagnostic.error(f"cannot read {written}", decl.position_of(where),
                                            decl.address, code="io"))
            else:
                out.extend(report_diagnostics(report, decl.address, decl.position_of(where)))
        return out


class OutsideRootError(PermissionError):
    """A data file path leads outside the manifest's directory and the dataset does not allow it."""

    hint = ("move the file under the manifest's directory, or set `allow_outside_root: true` on the "
            "dataset if reading it is intended")


def data_path(decl: ResourceDecl, written: str) -> Path:
    """A data file path as written in the manifest, resolved from the declaring file.

    Raises OutsideRootError when it leads outside the manifest's directory (symlinks
    followed) and the dataset does not set `allow_outside_root`: everything that reads a
    data file goes through here, so none of it reads one the manifest may not name."""
    path = _written_path(decl, written)
    if getattr(decl.spec, "allow_outside_root", False):
        return path
    root = decl.root.resolve()
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of symlinks
        raise OSError(f"cannot resolve {written}: {exc}") from None
    if not real.is_relative_to(root):
        raise OutsideRootError(f"the data file {_short(written)} is outside the manifest's directory "
                               f"{root}" + (f" (it leads to {real})" if real != path.absolute() else ""))
    return path


def _written_path(decl: ResourceDecl, written: str) -> Path:
    path = _expanded(written)
    return path if path.is_absolute() else Path(decl.source.file).parent / path


def _expanded(written: str) -> Path:
    try:
        return Path(written).expanduser()
    except RuntimeError:  # ~user of no such user: the path as written
        return Path(written)


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


def root_relative(decl: ResourceDecl, written: str) -> str:
    path = _written_path(decl, written)
    if _expanded(written).is_absolute():
        return str(path)
    return Path(os.path.relpath(path.resolve(), decl.root.resolve())).as_posix()


def report_diagnostics(report: DatasetReport, address: str | None,
                       where: Position | None = None) -> list[Diagnostic]:
    """A report's problems as diagnostics at the data file's lines, a few per category."""
    from foundryctl.datasets.report import CATEGORIES

    shown: dict[str, int] = {}
    out: list[Diagnostic] = []
    for problem in report.problems:
        shown[problem.category] = shown.get(problem.category, 0) + 1
        if shown[problem.category] > SHOWN_PER_CATEGORY:
            continue
        position = Position(report.path, problem.line, 1) if problem.line else where
        make = Diagnostic.error if problem.severity == "error" else Diagnostic.warning
        out.append(make(f"{problem.message} [{problem.category}]", position, address, code=problem.category))
    for category, total in sorted(report.counts.items()):
        hidden = total - min(shown.get(category, 0), SHOWN_PER_CATEGORY)
        if hidden > 0:
            make = Diagnostic.error if CATEGORIES[category][0] == "error" else Diagnostic.warning
            out.append(make(f"{hidden:,} more {category} problem(s) in {report.path}", where, address,
                            code=category, hint=f"see them all with: foundryctl data validate {report.path}"
                            + _task_flags(report)))
    return out


def _task_flags(report: DatasetReport) -> str:
    return f" --task {report.task}" if report.task != "chat_completion" else ""


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"
