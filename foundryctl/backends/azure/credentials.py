"""Who foundryctl acts as on Azure: azure-identity's DefaultAzureCredential chain, with one
clear error when no link of the chain can sign in."""

from __future__ import annotations

from typing import Any

from foundryctl.errors import BackendError

# What DefaultAzureCredential tries, in its order, and how a user makes each one work.
CHAIN = (
    ("environment", "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)"),
    ("workload identity", "AZURE_FEDERATED_TOKEN_FILE on Kubernetes or GitHub OIDC"),
    ("managed identity", "an Azure VM, App Service or Container App with an identity"),
    ("Azure CLI", "`az login`"),
    ("Azure PowerShell", "`Connect-AzAccount`"),
    ("Azure Developer CLI", "`azd auth login`"),
)

CREDENTIAL_HINT = ("log in with `az login` (and `az account set --subscription SUBSCRIPTION_ID`), or set "
                   "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal; "
                   "`foundryctl validate` needs no credentials")


class CheckedCredential:
    """A token credential whose failure is one BackendError that lists what was tried,
    instead of the SDK's stack of per-credential exceptions."""

    def __init__(self, inner: Any, *, tenant_id: str | None = None):
        self._inner = inner
        self._tenant_id = tenant_id  # asked of every token request (the CLI link honours it)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return self._checked(self._inner.get_token, scopes, kwargs)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        if not hasattr(self._inner, "get_token_info"):
            return self.get_token(*scopes, **kwargs)
        return self._checked(self._inner.get_token_info, scopes, kwargs)

    def _checked(self, call: Any, scopes: tuple, kwargs: dict) -> Any:
        from azure.core.exceptions import ClientAuthenticationError

        if self._tenant_id and "tenant_id" not in kwargs:
            kwargs = {**kwargs, "tenant_id": self._tenant_id}
        try:
            return call(*scopes, **kwargs)
        except ClientAuthenticationError as exc:
            raise credential_error(exc) from None

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def credential_error(exc: Exception) -> BackendError:
    tried = "\n".join(f"  - {name}: {how}" for name, how in CHAIN)
    detail = _first_lines(str(getattr(exc, "message", None) or exc), 12)
    return BackendError(
        "CredentialUnavailable",
        f"no Azure credential could sign in. DefaultAzureCredential tried, in order:\n{tried}\n"
        f"Azure said:\n{detail}",
        hint=CREDENTIAL_HINT)


def _first_lines(text: str, count: int) -> str:
    lines = [f"  {line.strip()}" for line in text.splitlines() if line.strip()]
    return "\n".join(lines[:count] + (["  ..."] if len(lines) > count else []))


def default_credential(tenant_id: str | None = None) -> CheckedCredential:
    from azure.identity import DefaultAzureCredential

    options: dict[str, Any] = {"exclude_interactive_browser_credential": True}
    if tenant_id:
        options.update(shared_cache_tenant_id=tenant_id, visual_studio_code_tenant_id=tenant_id,
                       workload_identity_tenant_id=tenant_id, additionally_allowed_tenants=[tenant_id])
    return CheckedCredential(DefaultAzureCredential(**options), tenant_id=tenant_id)
