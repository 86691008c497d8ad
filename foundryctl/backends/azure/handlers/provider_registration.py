"""ProviderRegistration on Azure: register a resource provider namespace on the subscription
and wait until Azure says Registered (azure-mgmt-resource `providers`)."""

from __future__ import annotations

import time
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.azure.errors import (
    backend_error,
    calling,
    is_not_found,
    read_or_none,
    sdk_errors,
    status_code,
)
from foundryctl.backends.azure.handlers.base import AzureHandler
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.errors import BackendError

REGISTERED = "Registered"
# States in which the subscription cannot use the namespace: the registration is absent.
# (Azure says NotRegistered for a namespace never registered, Unregistered after an unregister.)
ABSENT = frozenset({"notregistered", "unregistered", "unregistering"})
GONE = frozenset({"notregistered", "unregistered"})
REPORT_EVERY = 10.0  # seconds between "still registering" lines

UNREGISTER_HINT = ("Azure refuses to unregister a namespace the subscription still uses: delete its resources "
                   "first, or keep the registration and drop it from state with "
                   "`foundryctl state rm ADDRESS`")


class ProviderRegistrationHandler(AzureHandler):
    kind = "ProviderRegistration"

    def provider_id(self, namespace: str) -> str:
        return arm.provider_id(self.subscription, namespace)

    def identify(self, target: Target) -> str:
        return self.provider_id(target.attributes["namespace"])

    def _observed(self, namespace: str, provider: Any) -> Observed | None:
        state = provider.registration_state or ""
        if state.lower() in ABSENT:
            return None
        # Azure answers in its own spelling of the namespace; the manifest's (canonical,
        # see kinds/provider_registration.py) is kept so the plan does not diff on case.
        resource_id = self.provider_id(namespace)
        return Observed(resource_id, {"namespace": namespace},
                        {"id": resource_id, "registration_state": state})

    def _get(self, namespace: str) -> Any:
        return read_or_none(lambda: self.clients.resources.providers.get(namespace),
                            f"reading resource provider {namespace}")

    def read(self, target: Target) -> Observed | None:
        namespace = target.attributes["namespace"]
        provider = self._get(namespace)
        return None if provider is None else self._observed(namespace, provider)

    def _wait(self, namespace: str, provider: Any, done: frozenset[str], verb: str,
              progress: Progress) -> Any:
        """Poll every `poll_interval` seconds until the state is in `done` (lower case), for
        at most `registration_timeout` seconds."""
        started = time.monotonic()
        reported = 0.0
        while (provider.registration_state or "").lower() not in done:
            state = provider.registration_state or "Unknown"
            elapsed = time.monotonic() - started
            if elapsed >= self.config.registration_timeout:
                raise BackendError(
                    "RegistrationTimeout",
                    f"{verb} {namespace}: still {state} after {elapsed:.1f}s "
                    f"(registration_timeout is {self.config.registration_timeout:g}s)",
                    hint="Azure carries on with it; run apply again later, or raise the backend's "
                         "registration_timeout")
            if elapsed >= reported + REPORT_EVERY:
                reported = elapsed
                progress(f"still {state.lower()} ({elapsed:.0f}s elapsed)")
            time.sleep(self.config.poll_interval)
            provider = calling(f"reading resource provider {namespace}",
                               self.clients.resources.providers.get, namespace)
        return provider

    def create(self, target: Target, progress: Progress) -> Observed:
        namespace = target.attributes["namespace"]
        provider = calling(f"registering resource provider {namespace}",
                           self.clients.resources.providers.register, namespace)
        if (provider.registration_state or "").lower() != REGISTERED.lower():
            progress("registering")
            provider = self._wait(namespace, provider, frozenset({REGISTERED.lower()}), "registering",
                                  progress)
        observed = self._observed(namespace, provider)
        assert observed is not None
        return observed

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self.create(target, progress)  # nothing to change in place but the state

    def delete_notes(self, observed: Observed) -> list[str]:
        if self.config.unregister_providers:
            return ["unregisters it from the whole subscription"]
        return [("stays registered on the subscription: foundryctl only stops managing it "
                 "(unregister_providers: true unregisters)")]

    def delete(self, target: Target, progress: Progress) -> None:
        namespace = target.attributes["namespace"]
        if not self.config.unregister_providers:
            progress(f"left {namespace} registered (other resources of the subscription may need it)")
            return
        try:
            provider = self.clients.resources.providers.unregister(namespace)
        except sdk_errors() as exc:
            if is_not_found(exc):
                return  # Azure does not know the namespace: nothing is registered
            in_use = status_code(exc) in (400, 409)  # other failures (403...) keep their own hint
            raise backend_error(exc, f"unregistering resource provider {namespace}",
                                hint=UNREGISTER_HINT if in_use else None) from None
        if (provider.registration_state or "").lower() not in GONE:
            progress("unregistering")
            self._wait(namespace, provider, GONE, "unregistering", progress)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        namespace = arm.last_segment(backend_id)
        provider = self._get(namespace)
        if provider is None:
            return None
        # An import names the namespace as the user typed it; keep Azure's spelling.
        return self._observed(provider.namespace or namespace, provider)
