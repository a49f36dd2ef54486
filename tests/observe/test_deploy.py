"""deploy/: the Grafana dashboard and the Prometheus alert rules load, and name only
metrics the gateway exposes; the 5xx alert covers exactly the catalogue's 5xx causes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from wsgate.findings.gateway import CAUSES
from wsgate.observe.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bwsgate_[a-z_]+")
SUFFIXES = ("_bucket", "_count", "_sum")


def exposed() -> set[str]:
    metrics = Metrics()
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in SUFFIXES)
    return names


def check_names(expr: str) -> None:
    for name in METRIC.findall(expr):
        assert name in exposed(), f"{name} in {expr!r} is not a wsgate metric"


def test_grafana_dashboard_loads_and_names_real_metrics() -> None:
    dash: dict[str, Any] = json.loads((DEPLOY / "grafana" / "wsgate-dashboard.json").read_text())
    assert dash["uid"] and dash["title"] == "wsgate"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for panel in dash["panels"]:
        assert panel["title"] and panel["targets"]
        for target in panel["targets"]:
            check_names(target["expr"])
            assert target["expr"].count("(") == target["expr"].count(")")
    for variable in dash["templating"]["list"]:
        check_names(variable.get("query", ""))
    covered = {n for p in dash["panels"] for t in p["targets"] for n in METRIC.findall(t["expr"])}
    # Every metric family is on the dashboard.
    families = {n.removesuffix("_total") for n in exposed() if not n.endswith(SUFFIXES)}
    shown = {n.removesuffix("_total") for n in covered}
    shown |= {n.removesuffix(s) for n in covered for s in SUFFIXES if n.endswith(s)}
    assert families - {"wsgate_backend_admin_actions"} <= shown, families - shown


def test_alert_rules_load() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "wsgate-alerts.yml").read_text())
    (group,) = rules["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert {"WsgateQueueNearFull", "WsgateBackendEjected", "Wsgate5xxByCause"} <= set(alerts)
    for rule in alerts.values():
        check_names(rule["expr"])
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")")


def test_5xx_alert_names_every_5xx_cause() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "wsgate-alerts.yml").read_text())
    (rule,) = [r for r in rules["groups"][0]["rules"] if r["alert"] == "Wsgate5xxByCause"]
    (pattern,) = re.findall(r'cause=~"([^"]+)"', rule["expr"])
    assert set(pattern.split("|")) == {c.code for c in CAUSES if c.status and c.status >= 500}
