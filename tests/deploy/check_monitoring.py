#!/usr/bin/python3
"""Checks deploy/monitoring offline against a real kvcache-server: the Grafana dashboard and
the Prometheus rules and configuration parse and are well formed, and every metric, label and
label value their PromQL names is one the server's /metrics exposes (or Prometheus's own `up`).

Usage: check_monitoring.py SOURCE_DIR BIN_DIR   (run by ctest as deploy_monitoring_test)
Prints one line per failed check and "N passed, N failed"; exits 1 if any check failed.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

from checks import check, finish  # tests/deploy/checks.py

SRC = Path(sys.argv[1])
BIN = Path(sys.argv[2])
MON = SRC / "deploy" / "monitoring"


# --- What the server exposes: scrape a real one. ---------------------------------------------
def scrape():
    """{metric name: {label name: set of values}} from a fresh server's /metrics."""
    with tempfile.TemporaryDirectory(prefix="kvcache_monitoring.") as tmp:
        proc = subprocess.Popen(
            [str(BIN / "kvcache-server"), "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
             f"--disk-path={tmp}/disk", "--disk-bytes=16MiB", "--ram-bytes=16MiB",
             "--shutdown-grace=0s"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            url = None
            for line in proc.stdout:
                m = re.search(r"metrics (http://\S+/metrics)", line)
                if m:
                    url = m.group(1)
                    break
            if url is None:
                raise RuntimeError("kvcache-server did not print its metrics address")
            text = urllib.request.urlopen(url, timeout=10).read().decode()
        finally:
            proc.kill()
            proc.wait()
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s", line)
        labels = series.setdefault(m.group(1), {})
        for name, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""):
            labels.setdefault(name, set()).add(value)
    return series


EXPOSED = scrape()
check(any(n.startswith("kvcache_") for n in EXPOSED), "the server exposes kvcache_* metrics")
# Added by Prometheus to every target: `up`, and the target labels job and instance.
PROMETHEUS_OWN = {"up": {}}
TARGET_LABELS = {"job", "instance"}

# --- PromQL: the metrics and label matchers an expression names. ---------------------------------
FUNCTIONS = set("""
abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min count_over_time
day_of_month day_of_week days_in_month delta deriv exp floor histogram_quantile holt_winters hour
idelta increase irate label_join label_replace last_over_time ln log10 log2 max_over_time
min_over_time minute month predict_linear quantile_over_time rate resets round scalar sgn sort
sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time time timestamp vector year
sum min max avg group stddev stdvar count count_values bottomk topk quantile
""".split())
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}
IDENT = r"[A-Za-z_:][A-Za-z0-9_:]*"


def selectors(expr):
    """[(metric, [(label, op, value)])] for every vector selector in a PromQL expression."""
    # Label lists of by/without/on/ignoring/group_* are not selectors; drop them first.
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    e = re.sub(r"\[[^\]]*\]", " ", e)  # Range and subquery durations.
    out = []
    for m in re.finditer(rf"({IDENT})\s*(\{{[^}}]*\}})?", e):
        name, matchers = m.group(1), m.group(2)
        rest = e[m.end():].lstrip()
        if name in KEYWORDS or (name in FUNCTIONS and rest.startswith("(") and not matchers):
            continue
        parsed = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', matchers or "")
        out.append((name, parsed))
    return out


def check_expr(expr, where):
    found = selectors(expr)
    check(bool(found), f"{where}: names a metric ({expr!r})")
    for name, matchers in found:
        known = EXPOSED.get(name, PROMETHEUS_OWN.get(name))
        check(known is not None, f"{where}: metric {name} exists in the server's /metrics")
        if known is None:
            continue
        for label, op, value in matchers:
            if label in TARGET_LABELS:
                continue
            check(label in known, f"{where}: {name} has label {label}")
            if op == "=" and label in known:
                check(value in known[label],
                      f"{where}: {name}{{{label}=\"{value}\"}} exists "
                      f"(values: {sorted(known[label])})")
            if op == "=~" and label in known:
                check(any(re.fullmatch(value, v) for v in known[label]),
                      f"{where}: {name}{{{label}=~\"{value}\"}} matches a series")
    return {n for n, _ in found}


# --- The alert rules. -------------------------------------------------------------------------
rules_doc = yaml.safe_load((MON / "kvcache-alerts.yaml").read_text())
alerts = [r for g in rules_doc["groups"] for r in g["rules"]]
check(len(alerts) >= 8, "kvcache-alerts.yaml has the alerts")
check(len({r["alert"] for r in alerts}) == len(alerts), "alert names are unique")
named = set()
for r in alerts:
    where = f"alert {r.get('alert')}"
    check(set(r) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"},
          f"{where}: only known keys")
    check(re.fullmatch(r"\d+[smhd]", str(r.get("for", "0s"))) is not None,
          f"{where}: `for` is a duration")
    check(r.get("labels", {}).get("severity") in ("info", "warning", "critical"),
          f"{where}: severity is info, warning or critical")
    check({"summary", "description"} <= set(r.get("annotations", {})),
          f"{where}: has a summary and a description")
    check('job="kvcache"' in r["expr"], f"{where}: selects job=\"kvcache\"")
    named |= check_expr(r["expr"], where)
for metric in ("up", "kvcache_tier_checksum_failures_total", "kvcache_lookup_hits_total",
               "kvcache_rpc_latency_seconds_bucket", "kvcache_tier_evictions_total",
               "kvcache_tier_capacity_bytes"):
    check(metric in named, f"the alerts cover {metric}")

# --- The Prometheus configuration. ------------------------------------------------------------
prom = yaml.safe_load((MON / "prometheus.yml").read_text())
check(prom.get("rule_files") == ["kvcache-alerts.yaml"], "prometheus.yml loads the rules")
jobs = [j["job_name"] for j in prom["scrape_configs"]]
check("kvcache" in jobs, "prometheus.yml has the job the rules select")
kube = yaml.safe_load_all((SRC / "deploy/kubernetes/kvcache.yaml").read_text())
kube_ns = next(d["metadata"]["name"] for d in kube if d and d["kind"] == "Namespace")
for j in prom["scrape_configs"]:
    for sd in j.get("kubernetes_sd_configs", []):
        check(sd["namespaces"]["names"] == [kube_ns],
              f"{j['job_name']}: discovers pods in namespace {kube_ns}")

# --- The dashboard. ---------------------------------------------------------------------------
dash = json.loads((MON / "kvcache-dashboard.json").read_text())
panels = dash["panels"]
variables = {v["name"] for v in dash["templating"]["list"]}
check({"datasource", "job", "instance"} <= variables, "dashboard defines its variables")
check(len({p["id"] for p in panels}) == len(panels), "dashboard panel ids are unique")
named = set()
titles = []
for p in panels:
    where = f"panel {p.get('title')!r}"
    g = p["gridPos"]
    check(0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{where}: fits the grid")
    if p["type"] == "row":
        continue
    titles.append(p["title"])
    check(p["datasource"]["uid"] == "${datasource}", f"{where}: uses the datasource variable")
    check(bool(p.get("description")), f"{where}: has a description")
    targets = p.get("targets", [])
    check(bool(targets), f"{where}: has queries")
    check(len({t["refId"] for t in targets}) == len(targets), f"{where}: refIds are unique")
    for t in targets:
        for var in re.findall(r"\$(\w+)", t["expr"]):
            check(var in variables or var.startswith("__"), f"{where}: ${var} is defined")
        named |= check_expr(t["expr"].replace("$", ""), where)
for v in dash["templating"]["list"]:
    if v["type"] == "query":
        check_expr(v["definition"].split("(", 1)[1].rsplit(",", 1)[0], f"variable {v['name']}")
for metric in ("up", "kvcache_lookup_hits_total", "kvcache_tier_hits_total",
               "kvcache_tier_bytes", "kvcache_tier_capacity_bytes",
               "kvcache_tier_evictions_total", "kvcache_tier_demotions_total",
               "kvcache_tier_checksum_failures_total", "kvcache_rpc_latency_seconds_bucket",
               "kvcache_io_tasks", "kvcache_tier_demotion_waits_total"):
    check(metric in named, f"the dashboard shows {metric}")
check(len(titles) == len(set(titles)), "dashboard panel titles are unique")

# --- promtool, where Prometheus is installed (it is not in CI; the checks above stand). ----------
promtool = shutil.which("promtool")
if promtool:
    r = subprocess.run([promtool, "check", "rules", str(MON / "kvcache-alerts.yaml")],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"promtool check rules: {r.stdout}{r.stderr}")

finish()
