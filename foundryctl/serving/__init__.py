"""The local endpoint: generation engine, content filter, OpenAI-compatible server."""
