"""ProviderRegistration on the local cloud: register, then wait until Registered."""

from __future__ import annotations

import time
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import (
    NOT_REGISTERED,
    REGISTERED,
    REGISTERING,
    UNREGISTERING,
)
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.errors import BackendError

POLL_SECONDS = 0.2


class ProviderRegistrationHandler(LocalHandler):
    kind = "ProviderRegistration"

    def identify(self, target: Target) -> str:
        return arm.provider_id(self.subscription, target.attributes["namespace"])

    def _observed(self, namespace: str, state: str) -> Observed | None:
        if state in (NOT_REGISTERED, UNREGISTERING):
            return None
        resource_id = arm.provider_id(self.subscription, namespace)
        return Observed(resource_id, {"namespace": namespace},
                        {"id": resource_id, "registration_state": state})

    def read(self, target: Target) -> Observed | None:
        namespace = target.attributes["namespace"]
        return self._observed(namespace, self.cloud.provider_state(self.subscription, namespace))

    def _wait(self, namespace: str, goal: str, progress: Progress) -> str:
        timeout = max(60.0, self.cloud.registration_delay * 10)
        started = time.monotonic()
        reported = 0
        while True:
            state = self.cloud.provider_state(self.subscription, namespace)
            if state == goal:
                return state
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise BackendError("RegistrationTimeout",
                                   f"{namespace} is still {state} after {elapsed:.0f}s")
            if int(elapsed) >= reported + 10:
                reported = int(elapsed)
                progress(f"still {state.lower()} ({reported}s elapsed)")
            time.sleep(POLL_SECONDS)

    def create(self, target: Target, progress: Progress) -> Observed:
        namespace = target.attributes["namespace"]
        if self.cloud.register_provider(self.subscription, namespace) == REGISTERING:
            progress("registering")
        state = self._wait(namespace, REGISTERED, progress)
        observed = self._observed(namespace, state)
        assert observed is not None
        return observed

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self.create(target, progress)  # nothing to change in place but the state

    def delete(self, target: Target, progress: Progress) -> None:
        namespace = target.attributes["namespace"]
        self.cloud.unregister_provider(self.subscription, namespace)
        self._wait(namespace, NOT_REGISTERED, progress)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        namespace = arm.last_segment(backend_id)
        return self._observed(namespace, self.cloud.provider_state(self.subscription, namespace))
