"""One handler per kind for the Azure backend."""

HANDLERS: dict = {}
