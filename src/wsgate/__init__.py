"""wsgate: a WebSocket-aware gateway, doctor, linter and load generator."""

__version__ = "0.1.0"
