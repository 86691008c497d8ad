"""The Azure backend: the same manifest against real Azure AI Foundry (backend.py), one
handler per kind (handlers/), the SDK clients (clients.py) and the credential chain
(credentials.py). Importing this package loads none of them: `validate` reads only config.py."""
