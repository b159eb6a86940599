"""The dashboard and the alerts use the runtime's GPU series (which only GPU predictors export)."""

from __future__ import annotations

import json
import re

from tests.manifests import checks
from tests.support.tools import REPO_ROOT

GPU_SERIES = {
    "diffusers_gpu_memory_allocated_bytes",
    "diffusers_gpu_memory_reserved_bytes",
    "diffusers_gpu_memory_peak_bytes",
    "diffusers_gpu_memory_total_bytes",
    "diffusers_gpu_utilization_ratio",
}


def _alerts() -> dict[str, str]:
    rules = checks.load_file(REPO_ROOT / "gitops/monitoring/prometheusrule.yaml")[0]["spec"]["groups"]
    records = {r["record"]: str(r["expr"]) for g in rules for r in g["rules"] if "record" in r}
    alerts = {}
    for group in rules:
        for rule in group["rules"]:
            if "alert" in rule:
                # Expand recording rules so an alert is judged by the series it really reads.
                expr = str(rule["expr"])
                for name, body in records.items():
                    expr = expr.replace(name, f"({body})")
                alerts[rule["alert"]] = expr
    return alerts


def test_runtime_declares_the_gpu_series() -> None:
    exposed = checks.exposed_series((REPO_ROOT / checks.METRICS_MODULE).read_text(encoding="utf-8"))
    assert exposed >= GPU_SERIES


def test_dashboard_plots_every_gpu_series() -> None:
    dashboard = json.loads((REPO_ROOT / checks.DASHBOARD).read_text(encoding="utf-8"))
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    assert {s for s in GPU_SERIES if s in exprs} == GPU_SERIES


def test_an_alert_fires_on_sustained_oom_rejections() -> None:
    alerts = _alerts()
    oom = [a for a, e in alerts.items() if re.search(r'diffusers_requests_rejected_total\{reason="oom"\}', e)]
    assert oom == ["DiffusersOutOfMemory"]


def test_alerts_fire_on_gpu_saturation() -> None:
    alerts = _alerts()
    assert "diffusers_gpu_utilization_ratio" in alerts["DiffusersGpuSaturated"]
    assert "diffusers_gpu_memory_reserved_bytes" in alerts["DiffusersGpuMemoryNearlyFull"]
    assert "diffusers_gpu_memory_total_bytes" in alerts["DiffusersGpuMemoryNearlyFull"]
