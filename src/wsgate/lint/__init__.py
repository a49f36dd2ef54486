"""`wsgate lint`: static checks of proxy configs for the WebSocket mistakes behind 400/502/504.

Read a config with `loader.load(path)` (the only I/O), check it with
`engine.lint_config(config, options)` (pure), print with `report.render(findings, fmt)`.
"""
