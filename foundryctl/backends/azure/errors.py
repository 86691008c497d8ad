"""Azure's errors in foundryctl's terms: ARM error codes kept, messages made readable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from foundryctl.errors import BackendError

T = TypeVar("T")


def error_code(exc: BaseException) -> str:
    """ARM's error code (`RoleAssignmentExists`, `ResourceNotFound`...) or the HTTP status."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code:
        return str(code)
    status = status_code(exc)
    return f"Http{status}" if status else type(exc).__name__


def status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status


def sdk_errors() -> tuple[type[BaseException], ...]:
    """What the Azure SDKs raise (programming errors stay tracebacks)."""
    from azure.core.exceptions import AzureError

    try:
        from azure.ai.ml.exceptions import MlException
    except ImportError:  # pragma: no cover - azure-ai-ml is part of the azure extra
        return (AzureError,)
    return (AzureError, MlException)


def is_not_found(exc: BaseException) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    # A namespace the subscription has not registered holds nothing: ARM answers reads under
    # it with 409 MissingSubscriptionRegistration (a fresh subscription's first plan).
    return (isinstance(exc, ResourceNotFoundError) or status_code(exc) == 404
            or error_code(exc) == "MissingSubscriptionRegistration")


def azure_message(exc: BaseException) -> str:
    """The first line of Azure's message for an error."""
    error = getattr(exc, "error", None)
    message = str(getattr(error, "message", None) or getattr(exc, "message", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def _innermost(error: Any) -> Any:
    """ARM nests the cause: a failed template deployment says "At least one resource
    deployment operation failed", and its details say StorageAccountAlreadyTaken."""
    while error is not None and getattr(error, "details", None):
        error = error.details[0]
    return error


def backend_error(exc: BaseException, doing: str, *, hint: str | None = None,
                  nested_hint: str | None = None) -> BackendError:
    """`doing` says what foundryctl was doing ("creating hub ft-hub"); `nested_hint` is the
    hint when Azure's error wraps a more precise one, which is reported instead."""
    if isinstance(exc, BackendError):
        return exc
    outer = getattr(exc, "error", None)
    inner = _innermost(outer)
    if inner is not outer and getattr(inner, "code", None) and getattr(inner, "message", None):
        message = str(inner.message).strip().splitlines()[0]
        return BackendError(str(inner.code), f"{doing}: {message}", hint=hint or nested_hint)
    message = azure_message(exc)
    code = error_code(exc)
    if hint is None and code == "MissingSubscriptionRegistration":
        hint = ("register the namespace Azure names: add `kind: ProviderRegistration` with that "
                "`namespace` to the manifest (hubs and projects wait for registrations)")
    if hint is None and (code in ("AuthorizationFailed", "LinkedAuthorizationFailed") or status_code(exc) == 403):
        hint = ("the signed-in identity lacks a role for this: see docs/azure-backend.md "
                "(required roles)")
    return BackendError(code, f"{doing}: {message}", hint=hint)


def read_or_none(call: Callable[[], T], doing: str) -> T | None:
    """A GET where 404 means absent."""
    try:
        return call()
    except sdk_errors() as exc:
        if is_not_found(exc):
            return None
        raise backend_error(exc, doing) from None


def unless_absent(call: Callable[[], Any], doing: str) -> None:
    """A cancel, archive or delete where 404 means there is nothing left to do."""
    read_or_none(call, doing)


def calling(doing: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call an SDK method, turning its errors into BackendError."""
    try:
        return call(*args, **kwargs)
    except sdk_errors() as exc:
        raise backend_error(exc, doing) from None
