"""Microsoft.Resources providers: a subscription's resource provider registrations.

Shapes follow azure-rest-api-specs Microsoft.Resources/stable/2025-04-01/examples
(GetProvider.json): POST .../register and .../unregister answer 200 with the provider, whose
`registrationState` moves on as it is polled: Registering -> Registered, Unregistering ->
Unregistered. A namespace is NotRegistered until it is registered once, except the ones a
new subscription has registered (`REGISTERED_BY_DEFAULT`).

Knobs in `fake.state` (set them with the helpers below):
- provider polls: how many GETs still answer Registering/Unregistering (`seed_provider`);
- `providers_in_use`: namespaces with resources left in the subscription, which Azure
  refuses to unregister (`mark_in_use`).
"""

from __future__ import annotations

from typing import Any

from azurefake import FakeAzure, Reply, arm_error

PROVIDER_PATH = r"/subscriptions/(?P<sub>[^/]+)/providers/(?P<ns>[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+)"
REGISTERED_BY_DEFAULT = ("Microsoft.Authorization", "Microsoft.Resources", "Microsoft.Features")
DEFAULT_POLLS = 2  # GETs that still answer Registering after the POST, as a slow Azure does

# Final state each transitional state settles into.
SETTLES = {"Registering": "Registered", "Unregistering": "Unregistered"}


def _providers(fake: FakeAzure) -> dict[str, dict[str, Any]]:
    return fake.state.setdefault("providers", {})


def seed_provider(fake: FakeAzure, namespace: str, state: str, *, polls: int = DEFAULT_POLLS) -> None:
    """Put a provider in `state`; a transitional state lasts `polls` more GETs."""
    _providers(fake)[namespace.lower()] = {"namespace": namespace, "state": state, "polls": polls}


def mark_in_use(fake: FakeAzure, namespace: str) -> None:
    fake.state.setdefault("providers_in_use", set()).add(namespace.lower())


def provider_state(fake: FakeAzure, namespace: str) -> str:
    entry = _providers(fake).get(namespace.lower())
    if entry is not None:
        return entry["state"]
    registered = namespace.lower() in {n.lower() for n in REGISTERED_BY_DEFAULT}
    return "Registered" if registered else "NotRegistered"


def provider_body(fake: FakeAzure, namespace: str, state: str) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{fake.subscription_id}/providers/{namespace}",
        "namespace": namespace,
        "registrationState": state,
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [{
            "resourceType": "virtualNetworks",
            "locations": ["East US 2", "Sweden Central"],
            "apiVersions": ["2024-05-01", "2023-11-01"],
            "capabilities": ("CrossResourceGroupResourceMove, CrossSubscriptionResourceMove, "
                             "SupportsTags, SupportsLocation"),
        }],
    }


def _entry(fake: FakeAzure, namespace: str) -> dict[str, Any]:
    entries = _providers(fake)
    if namespace.lower() not in entries:
        seed_provider(fake, namespace, provider_state(fake, namespace))
    return entries[namespace.lower()]


def _wrong_subscription(fake: FakeAzure, match: Any) -> Reply | None:
    if match["sub"].lower() != fake.subscription_id.lower():
        return arm_error(404, "SubscriptionNotFound", f"The subscription '{match['sub']}' could not be found.")
    return None


def _get(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_subscription(fake, match)) is not None:
            return error
        entry = _entry(fake, match["ns"])
        answer = entry["state"]
        if answer in SETTLES:
            if entry["polls"] <= 0:
                entry["state"] = answer = SETTLES[answer]
            else:
                entry["polls"] -= 1
        return 200, {}, provider_body(fake, entry["namespace"], answer)
    return handler


def _register(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_subscription(fake, match)) is not None:
            return error
        entry = _entry(fake, match["ns"])
        if entry["state"] not in ("Registered", "Registering"):
            entry.update(state="Registering", polls=fake.state.get("provider_polls", DEFAULT_POLLS))
        return 200, {}, provider_body(fake, entry["namespace"], entry["state"])
    return handler


def _unregister(fake: FakeAzure) -> Any:
    def handler(call: Any, match: Any) -> Reply:
        if (error := _wrong_subscription(fake, match)) is not None:
            return error
        namespace = match["ns"]
        if namespace.lower() in fake.state.get("providers_in_use", set()):
            return arm_error(409, "Conflict", (
                f"Unregistration of resource provider '{namespace}' is not allowed because the "
                f"subscription '{fake.subscription_id}' still has resources of this provider."))
        entry = _entry(fake, namespace)
        if entry["state"] in ("Registered", "Registering"):
            entry.update(state="Unregistering", polls=fake.state.get("provider_polls", DEFAULT_POLLS))
        return 200, {}, provider_body(fake, entry["namespace"], entry["state"])
    return handler


def install(fake: FakeAzure) -> None:
    fake.route("GET", PROVIDER_PATH, _get(fake))
    fake.route("POST", PROVIDER_PATH + "/register", _register(fake))
    fake.route("POST", PROVIDER_PATH + "/unregister", _unregister(fake))
