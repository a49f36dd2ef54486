"""Shared pytest configuration."""


def pytest_report_header() -> str:
    """Which build the tests run on: the compiled core (scripts/build_compiled.py) or pure
    Python, with the reason when a compiled build exists but is stale."""
    import wsgate

    return f"wsgate build: {wsgate.BUILD}"
