"""Who foundryctl acts as on Azure: azure-identity's DefaultAzureCredential chain, with one
clear error when no link of the chain can sign in."""

from __future__ import annotations

import threading
import time
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
    instead of the SDK's stack of per-credential exceptions.

    It also keeps each token until shortly before it expires: a backend's SDK clients (an
    MLClient alone holds about twenty pipelines) all ask it, and the chain's Azure CLI link
    would otherwise start an `az` process for every one of them, from every refresh thread.
    """

    REFRESH_MARGIN = 300.0  # seconds before expiry a token is fetched again

    def __init__(self, inner: Any, *, tenant_id: str | None = None):
        self._inner = inner
        self._tenant_id = tenant_id  # asked of every token request (the CLI link honours it)
        self._tokens: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        options = {"claims": claims, "tenant_id": tenant_id, "enable_cae": enable_cae}
        info = self._token(scopes, {k: v for k, v in options.items() if v})
        return AccessToken(info.token, info.expires_on)

    def get_token_info(self, *scopes: str, options: dict[str, Any] | None = None) -> Any:
        return self._token(scopes, {k: v for k, v in (options or {}).items() if v})

    def _token(self, scopes: tuple, options: dict[str, Any]) -> Any:
        from azure.core.credentials import AccessTokenInfo
        from azure.core.exceptions import ClientAuthenticationError

        if self._tenant_id and "tenant_id" not in options:
            options["tenant_id"] = self._tenant_id
        key = (scopes, tuple(sorted((k, str(v)) for k, v in options.items())))
        with self._lock:  # concurrent first requests wait for one sign-in instead of each starting one
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_on - time.time() > self.REFRESH_MARGIN:
                return cached
            try:
                if hasattr(self._inner, "get_token_info"):
                    info = self._inner.get_token_info(*scopes, options=options)
                else:
                    token = self._inner.get_token(*scopes, **options)
                    info = AccessTokenInfo(token.token, token.expires_on)
            except ClientAuthenticationError as exc:
                raise credential_error(exc) from None
            if not options.get("claims"):  # a claims challenge is answered once, not reused
                self._tokens[key] = info
            return info

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
