"""Observability: structured logs (and later metrics and the dashboard)."""
