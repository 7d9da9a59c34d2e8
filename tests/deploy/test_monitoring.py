"""Monitoring files: deploy/prometheus (scrape config, alert rules and their unit tests),
deploy/grafana (dashboard and provisioning), the prod overlay's monitoring/ kustomization
(ServiceMonitor, PrometheusRule) and compose's `monitoring` profile.

Validated without Docker, a cluster or a running service. Rules, their unit tests, the
scrape config and the dashboard's queries go through ``promtool`` (Debian: ``apt-get install
prometheus``); without it they get a structural check instead, and the test says so. Every
metric a rule or a panel reads must be one the services export: the names come from what
each service's ``/metrics`` would serve at start (the gateway's registry, and each consumer's
process registry read in a subprocess that imports the service's entry point; the trainer's
run metrics once its bootstrap has registered them), never from a list kept here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cryptocast_gateway.observability import GatewayMetrics

ROOT = Path(__file__).parents[2]
VENV_BIN = Path(sys.executable).parent
PROMETHEUS_DIR = ROOT / "deploy/prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/cryptocast.json"
PROVISIONING = ROOT / "deploy/grafana/provisioning"
K8S_MONITORING = "deploy/k8s/overlays/prod/monitoring"
CONSUMERS = ("inference", "verifier", "ingestor")
COMPOSE_TOOL = [
    "tool",
    "run",
    "--overrides",
    str(ROOT / "tests/deploy/compose-tool-overrides.txt"),
    "--from",
    "docker-compose==1.29.2",
    "docker-compose",
]
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Series Prometheus itself writes for every target: no service exports them.
SCRAPE_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
# The series a metric family of each type is exposed as (its _created gauges, where the
# client emits them, come as families of their own).
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
}
GRAFANA_MACROS = re.compile(r"\$__(?:rate_interval|interval|range)\b")

TOKEN = re.compile(
    r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^}]*\}|\[[^\]]*\]|\d[\w.]*|[A-Za-z_:][\w:]*|\S"""
)
IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = GROUPING | {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
AGGREGATING = {"(", "by", "without"}  # what follows a function or aggregation name
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')

Selector = tuple[str, dict[str, tuple[str, str]]]  # metric name, {label: (operator, value)}


def tool(name: str, hint: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (VENV_BIN / name, ROOT / ".tools/bin" / name) if p.exists()), None
    )
    if found is None:
        pytest.fail(f"{name} is needed for this test and was not found: {hint}")
    return found


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False
    )


def selectors(expr: str) -> list[Selector]:
    """The series selectors of a PromQL expression: metric names with their matchers.
    Function and aggregation names (followed by "(", by or without), keywords, the label
    lists of by/without/on/ignoring, strings, ranges and numbers are not selectors."""
    tokens = TOKEN.findall(GRAFANA_MACROS.sub("5m", expr))
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        token, after = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in GROUPING and after == "(":
            i = tokens.index(")", i)
        elif IDENTIFIER.fullmatch(token) and token not in KEYWORDS and after not in AGGREGATING:
            matchers = MATCHER.findall(after) if after.startswith("{") else []
            found.append((token, {label: (op, value) for label, op, value in matchers}))
        i += 1
    return found


def exposed_series(exposition: str) -> set[str]:
    """Series names a /metrics text exposes, with each type's suffixes; families with no
    sample yet (a labelled counter nothing has counted) are included."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        suffixes = SERIES_SUFFIXES.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def consumer_exposition(service: str) -> str:
    """What a consumer's health server answers on /metrics right after it starts: its entry
    point's module imported in a fresh process, then the same exposition function."""
    (script,) = entry_points(group="console_scripts", name=f"cryptocast-{service}")
    module = script.value.split(":")[0]
    code = (
        "import importlib, sys\n"
        "importlib.import_module(sys.argv[1])\n"
        "from cryptocast_common.health import metrics_exposition\n"
        "sys.stdout.write(metrics_exposition().decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, module], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def trainer_exposition() -> str:
    """What the trainer's /metrics answers once started: its bootstrap registers the run
    metrics in the process registry (process_metrics), which /metrics serves."""
    code = (
        "import sys\n"
        "from cryptocast_trainer.bootstrap import process_metrics\n"
        "from cryptocast_common.health import metrics_exposition\n"
        "process_metrics()\n"
        "sys.stdout.write(metrics_exposition().decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Series names each job's /metrics exposes."""
    names = {"gateway": exposed_series(GatewayMetrics().render().decode())}
    for service in CONSUMERS:
        names[service] = exposed_series(consumer_exposition(service))
    names["trainer"] = exposed_series(trainer_exposition())
    return names


@pytest.fixture(scope="module")
def promtool() -> str | None:
    return shutil.which("promtool") or next(
        (str(p) for p in (VENV_BIN / "promtool", ROOT / ".tools/bin/promtool") if p.exists()),
        None,
    )


def say_which(promtool: str | None, what: str) -> None:
    if promtool:
        print(f"{what}: validated with {promtool}")
    else:
        warnings.warn(
            f"{what}: promtool not found (apt-get install prometheus), so only a structural "
            "check ran: PromQL is not parsed and the rules' unit tests did not run",
            stacklevel=2,
        )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def scrape_config() -> dict[str, Any]:
    return load_yaml(PROMETHEUS_DIR / "prometheus.yml")


def job_names() -> set[str]:
    return {job["job_name"] for job in scrape_config()["scrape_configs"]}


def rule_exprs() -> Iterator[tuple[str, str]]:
    for group in load_yaml(RULES)["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]


def balanced(expr: str) -> bool:
    depth: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in "([{":
            depth.append(char)
        elif char in pairs and (not depth or depth.pop() != pairs[char]):
            return False
    return not depth


def check_rules_structurally(groups: list[dict[str, Any]]) -> None:
    names = [group["name"] for group in groups]
    assert len(set(names)) == len(names), names
    for group in groups:
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            assert ("alert" in rule) != ("record" in rule), rule
            assert set(rule) <= {
                "alert",
                "record",
                "expr",
                "for",
                "keep_firing_for",
                "labels",
                "annotations",
            }, rule
            assert isinstance(rule["expr"], str) and balanced(rule["expr"]), name
            assert re.fullmatch(r"(\d+(ms|[smhdwy]))+", rule.get("for", "0s")), name


def test_alert_rules_pass_promtool_check_and_their_unit_tests(promtool: str | None) -> None:
    groups = load_yaml(RULES)["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    for rule in alerts:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    if promtool:
        checked = run(promtool, "check", "rules", str(RULES))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        tested = run(promtool, "test", "rules", str(PROMETHEUS_DIR / "rules.test.yml"))
        assert tested.returncode == 0, tested.stdout + tested.stderr
        tested_alerts = set(
            re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "rules.test.yml").read_text())
        )
        assert {rule["alert"] for rule in alerts} <= tested_alerts, "an alert has no unit test"
    else:
        check_rules_structurally(groups)
    say_which(promtool, "deploy/prometheus/rules.yml")


def test_dashboard_queries_are_valid_promql(promtool: str | None, tmp_path: Path) -> None:
    exprs = [GRAFANA_MACROS.sub("5m", expr) for _, expr in dashboard_exprs()]
    assert exprs
    if promtool:  # as recording rules, which promtool parses
        rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
        path = tmp_path / "dashboard-queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        checked = run(promtool, "check", "rules", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    else:
        assert all(balanced(expr) for expr in exprs), exprs
    say_which(promtool, "dashboard queries")


def test_scrape_config_covers_the_five_services_on_their_metrics_ports(
    promtool: str | None,
) -> None:
    config = scrape_config()
    if promtool:  # also checks that rule_files exist
        checked = run(promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    else:
        for rule_file in config["rule_files"]:
            assert (PROMETHEUS_DIR / rule_file).is_file(), rule_file
        check_rules_structurally(load_yaml(RULES)["groups"])
    say_which(promtool, "deploy/prometheus/prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"gateway", "trainer", *CONSUMERS}
    for name, job in jobs.items():
        assert job.get("metrics_path", "/metrics") == "/metrics", name
        (discovery,) = job["dns_sd_configs"]
        if name in ("gateway", "trainer"):  # /metrics on the port their HTTP API listens on
            dockerfile = (ROOT / f"deploy/docker/{name}.Dockerfile").read_text()
            expected = int(re.findall(r"^EXPOSE (\d+)", dockerfile, re.M)[0])
        else:
            dockerfile = (ROOT / f"deploy/docker/{name}.Dockerfile").read_text()
            expected = int(re.findall(r"CRYPTOCAST_HEALTH_PORT=(\d+)", dockerfile)[0])
        assert discovery["port"] == expected, name


def check_selector(selector: Selector, exported: dict[str, set[str]]) -> str | None:
    """Why a selector reads nothing a service exports, or None."""
    name, matchers = selector
    jobs = set(exported)
    if "job" in matchers:
        op, value = matchers["job"]
        matched = {
            "=": lambda j: j == value,
            "!=": lambda j: j != value,
            "=~": lambda j: re.fullmatch(value, j) is not None,
            "!~": lambda j: re.fullmatch(value, j) is None,
        }[op]
        jobs = {job for job in jobs if matched(job)}
        if not jobs:
            return f"{name}: job{op}{value!r} matches no scrape job of {sorted(exported)}"
        missing = {job for job in jobs if name not in exported[job] | SCRAPE_SERIES}
        if missing:
            return f"{name} is not exported by job {sorted(missing)}"
        return None
    if name in SCRAPE_SERIES or any(name in names for names in exported.values()):
        return None
    return f"{name} is exported by no service"


def test_metric_names_are_read_with_their_suffixes(exported: dict[str, set[str]]) -> None:
    """The check below can fail: wrong suffixes, unknown names and wrong jobs are caught."""
    assert "cryptocast_http_request_duration_seconds_bucket" in exported["gateway"]
    assert "cryptocast_dead_lettered_total" in exported["verifier"]
    assert {
        "cryptocast_trainer_runs_failed_total",
        "cryptocast_trainer_runs_succeeded_total",
        "cryptocast_trainer_last_success_timestamp_seconds",
        "cryptocast_trainer_run_duration_seconds_bucket",
    } <= exported["trainer"]
    assert selectors('sum by (le, job) (rate(x_bucket{job="a", le!="1"}[5m])) > bool 1') == [
        ("x_bucket", {"job": ("=", "a"), "le": ("!=", "1")})
    ]
    assert selectors("time() - max_over_time(timestamp(a offset 30m > 0)[1d:5m]) or b") == [
        ("a", {}),
        ("b", {}),
    ]
    wrong = [
        'rate(cryptocast_http_request_duration_seconds{job="gateway"}[5m])',  # no _bucket
        "cryptocast_events_persisted",  # a counter without _total
        "cryptocast_accuracy_total",  # a gauge with it
        'cryptocast_events_persisted_total{job="verifier"}',  # the gateway's, not this job's
        'cryptocast_verifier_closes_given_up_total{job=~"gate.*"}',
        'up{job="nobody"}',
        "cryptocast_candles_published_total",  # does not exist
    ]
    for expr in wrong:
        assert any(check_selector(s, exported) for s in selectors(expr)), expr


def test_rules_and_dashboard_read_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    assert set(exported) == job_names(), "one export set per scrape job"
    used: dict[str, list[Selector]] = {}
    for where, expr in [*rule_exprs(), *dashboard_exprs()]:
        used[where] = selectors(expr)
        assert used[where], f"{where}: no metric found in {expr!r}"
    problems = [
        f"{where}: {problem}"
        for where, found in used.items()
        for problem in (check_selector(s, exported) for s in found)
        if problem
    ]
    assert not problems, "\n".join(problems)
    names = {name for found in used.values() for name, _ in found}
    assert names >= {
        "cryptocast_events_persisted_total",
        "cryptocast_dead_lettered_total",
        "cryptocast_http_request_duration_seconds_bucket",
        "cryptocast_accuracy",
        "up",
    }, "the dashboard's topics: rate and lag, dead letters, latency, skill, up/down"


def test_grafana_dashboard_and_provisioning(compose: dict[str, Any]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids), ids
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": f"${{{variable['name']}}}"}

    (source,) = load_yaml(PROVISIONING / "datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == variable["current"]["value"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    (provider,) = load_yaml(PROVISIONING / "dashboards/cryptocast.yml")["providers"]
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts[str(DASHBOARD.parent)] == provider["options"]["path"]
    assert mounts[str(PROVISIONING)] == "/etc/grafana/provisioning"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose's own reading of the file with the monitoring profile on, after
    checking it also reads it without."""
    uv = tool("uv", "run `make install`, which bootstraps uv into .tools/")
    configs = []
    for profile in ([], ["--profile", "monitoring"]):
        result = run(uv, *COMPOSE_TOOL, *profile, "--env-file", ".env.example", "config")
        assert result.returncode == 0, result.stderr
        assert "is not set" not in result.stderr, result.stderr
        configs.append(yaml.safe_load(result.stdout))
    return configs[-1]


def test_compose_runs_prometheus_and_grafana_only_with_the_monitoring_profile(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    monitoring = {name for name, s in services.items() if "monitoring" in s.get("profiles", [])}
    assert monitoring == {"prometheus", "grafana"}
    for name in monitoring:
        assert services[name]["profiles"] == ["monitoring"], name
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"]), name
    mounts = dict(volume.split(":")[:2] for volume in services["prometheus"]["volumes"])
    config_target = mounts[str(PROMETHEUS_DIR / "prometheus.yml")]
    for rule_file in scrape_config()["rule_files"]:  # relative to the config's directory
        target = str(Path(config_target).parent / rule_file)
        assert mounts[str(PROMETHEUS_DIR / rule_file)] == target, rule_file
    for service in (services["prometheus"], services["grafana"]):
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            assert source in compose["volumes"] or Path(source).exists(), volume
    for job in scrape_config()["scrape_configs"]:
        for name in job["dns_sd_configs"][0]["names"]:
            assert name in services, f"{job['job_name']}: no compose service {name}"


@pytest.fixture(scope="module")
def kubernetes() -> dict[str, list[dict[str, Any]]]:
    """The prod overlay and its monitoring kustomization, rendered by kubectl."""
    kubectl = tool("kubectl", "install kubectl (it includes kustomize)")
    rendered = {}
    for name, path in (("prod", "deploy/k8s/overlays/prod"), ("monitoring", K8S_MONITORING)):
        result = run(kubectl, "kustomize", path)
        assert result.returncode == 0, result.stderr
        rendered[name] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return rendered


def test_kubernetes_monitoring_validates_offline(
    kubernetes: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    manifest = tmp_path / "monitoring.yaml"
    manifest.write_text(yaml.safe_dump_all(kubernetes["monitoring"]))
    checked = run(
        tool("kubernetes-validate", "it comes with the dev dependencies"),
        "--strict",
        "--quiet",
        str(manifest),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    unvalidated = set(re.findall(r"schema for kind (\w+)", checked.stdout + checked.stderr))
    assert unvalidated <= OPERATOR_KINDS
    # The prod overlay itself stays free of them (its own test allows only its operators).
    assert not {d["kind"] for d in kubernetes["prod"]} & OPERATOR_KINDS


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        present, value = expression["key"] in labels, labels.get(expression["key"])
        if not {
            "In": value in expression.get("values", []),
            "NotIn": value not in expression.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[expression["operator"]]:
            return False
    return True


def test_service_monitor_scrapes_every_service_as_its_scrape_job(
    kubernetes: dict[str, list[dict[str, Any]]],
) -> None:
    docs = kubernetes["prod"] + kubernetes["monitoring"]
    (monitor,) = [d for d in kubernetes["monitoring"] if d["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert all(d["metadata"]["namespace"] == "cryptocast" for d in kubernetes["monitoring"])
    spec = monitor["spec"]
    selected = [
        d
        for d in docs
        if d["kind"] == "Service" and labels_match(spec["selector"], d["metadata"]["labels"])
    ]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    jobs = set()
    for service in selected:
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        endpoints = [e for e in spec["endpoints"] if e["port"] in ports]
        assert len(endpoints) == 1, service["metadata"]["name"]
        (endpoint,) = endpoints
        assert endpoint.get("path", "/metrics") == "/metrics"
        (pods,) = [
            d
            for d in deployments
            if labels_match(
                {"matchLabels": service["spec"]["selector"]},
                d["spec"]["template"]["metadata"]["labels"],
            )
        ]
        container_ports = {
            p["name"] for c in pods["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        assert ports[endpoint["port"]]["targetPort"] in container_ports
        (relabel,) = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
        (source,) = relabel["sourceLabels"]
        label = source.removeprefix("__meta_kubernetes_service_label_")
        value = next(
            v for k, v in service["metadata"]["labels"].items() if re.sub(r"[^\w]", "_", k) == label
        )
        jobs.add(
            re.sub(
                f"^(?:{relabel['regex']})$",
                relabel.get("replacement", "$1").replace("$", "\\"),
                value,
            )
        )
    assert jobs == job_names(), "the same job labels as deploy/prometheus/prometheus.yml"


def test_prometheus_rule_carries_exactly_the_alert_rules(
    kubernetes: dict[str, list[dict[str, Any]]],
) -> None:
    (rule,) = [d for d in kubernetes["monitoring"] if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"]["groups"] == load_yaml(RULES)["groups"], (
        f"{K8S_MONITORING}/prometheusrule.yaml is out of sync: paste deploy/prometheus/"
        "rules.yml's `groups:` under its spec"
    )
