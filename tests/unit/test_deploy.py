"""deploy/compose.yaml and deploy/kubernetes/ run as shipped: checked against the code.

Without Docker or a cluster: the YAML is parsed, and every name one part gives another is
looked up -- ConfigMaps, Secrets and their keys, volumes, ports, probe paths, images,
Services and their selectors, environment variables (each a setting opsloop reads), the
provider, and each container's command line, parsed by opsloop's own CLI. (kubeconform
needs its schemas from the internet, and Debian's docker-compose 1.29 does not know
``cgroup:``; docs/replicas.md says how to run both where they are available.)
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from bot.cli import app as cli_app
from bot.config import Policy
from bot.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBE = DEPLOY / "kubernetes"
IMAGES = {"opsloop:latest", "postgres:16"}  # built from deploy/Dockerfile, or official
PROVIDERS = {"ollama", "openai", "groq"}  # the real ones (scripted is for tests)
PROVIDER_KEYS = {"openai": "OPENAI_API_KEY", "groq": "GROQ_API_KEY"}
SERVED = {  # what each serve command answers on its port (bot/health.py, sandbox/service.py)
    "slack": {"/healthz", "/readyz", "/metrics", "/slack/events"},
    "sandbox": {"/healthz", "/readyz", "/metrics"},
}


def settings_env() -> set[str]:
    """Every environment variable opsloop's settings read."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.update(str(c) for c in choices)
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"OPSLOOP_{name.upper()}")
    return names


def parse_command(args: list[str]) -> tuple[str, dict[str, Any]]:
    """The opsloop command ``args`` names, and its parsed options (a usage error raises)."""
    command: Any = typer.main.get_command(cli_app)
    ctx = command.make_context("opsloop", list(args))
    while hasattr(command, "resolve_command"):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
    return str(command.name), dict(ctx.params)


def kube_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(KUBE.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in kube_documents() if d["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    return {**of_kind("Deployment"), **of_kind("StatefulSet")}


def containers() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, c)
        for name, w in workloads().items()
        for c in w["spec"]["template"]["spec"]["containers"]
    ]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_keys() -> dict[str, set[str]]:
    return {n: set(s.get("stringData", {})) for n, s in of_kind("Secret").items()}


def test_every_configmap_secret_and_volume_a_pod_names_exists() -> None:
    configmaps, secrets = of_kind("ConfigMap"), secret_keys()
    for name, w in workloads().items():
        pod = w["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps, (name, v)
            assert "emptyDir" in v or "configMap" in v, (name, v)  # no hostPath, no missing kind
        for c in pod["containers"]:
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claims, (name, mount)
            for source in c.get("envFrom", []):
                assert source["secretRef"]["name"] in secrets, (name, source)
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), (name, ref)


def test_every_opsloop_container_runs_a_real_command_with_probes_on_served_paths() -> None:
    for name, c in containers():
        assert c["image"] in IMAGES, (name, c["image"])
        assert c["resources"]["requests"], name
        ports = {p["containerPort"] for p in c["ports"]}
        assert c.get("livenessProbe") and c.get("readinessProbe"), name
        if c["image"] != "opsloop:latest":
            continue
        command, params = parse_command(c["args"])
        assert params["port"] in ports, name
        probes = [c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]]
        assert {p["path"] for p in probes} == {"/healthz", "/readyz"}, name
        for probe in probes:
            assert probe["port"] == params["port"] and probe["path"] in SERVED[command], name
        if command == "slack":
            assert params["http"], "the Kubernetes bot serves Slack's HTTP mode"


def test_every_environment_variable_is_one_opsloop_reads_and_the_provider_is_set() -> None:
    known = settings_env()
    secrets = secret_keys()
    for name, c in containers():
        if c["image"] != "opsloop:latest":
            continue
        names = set(env_of(c)) | {
            k for s in c.get("envFrom", []) for k in secrets[s["secretRef"]["name"]]
        }
        assert names <= known, (name, names - known)
        if parse_command(c["args"])[0] == "slack":
            provider = env_of(c)["OPSLOOP_PROVIDER"]["value"]
            assert provider in PROVIDERS and env_of(c)["OPSLOOP_MODEL"]["value"]
            assert PROVIDER_KEYS.get(provider, "OPSLOOP_PROVIDER") in names
            assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "OPSLOOP_DATABASE_URL"} <= names


def test_the_opsloop_toml_of_the_configmap_is_a_valid_policy() -> None:
    [config] = of_kind("ConfigMap").values()
    Policy.model_validate(tomllib.loads(config["data"]["opsloop.toml"]))
    for _, c in containers():
        if c["image"] == "opsloop:latest":
            mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
            path = env_of(c)["OPSLOOP_CONFIG"]["value"]
            assert path == f"{mounts['config']}/opsloop.toml"


def test_services_and_disruption_budgets_select_pods_that_exist_on_their_ports() -> None:
    pods = {
        name: (w["spec"]["template"]["metadata"]["labels"], w) for name, w in workloads().items()
    }

    def selected(selector: dict[str, str]) -> list[dict[str, Any]]:
        found = [w for labels, w in pods.values() if selector.items() <= labels.items()]
        assert found, selector
        return found

    for name, service in of_kind("Service").items():
        [w] = selected(service["spec"]["selector"])
        ports = {
            p["containerPort"]
            for c in w["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        assert all(p["targetPort"] in ports for p in service["spec"]["ports"]), name
    for budget in of_kind("PodDisruptionBudget").values():
        selected(budget["spec"]["selector"]["matchLabels"])
    assert set(of_kind("PodDisruptionBudget")) >= {"opsloop-bot", "opsloop-sandbox"}


def test_the_bot_reaches_every_sandbox_replica_and_postgres_by_their_real_names() -> None:
    services, sets = of_kind("Service"), of_kind("StatefulSet")
    sandbox = sets["opsloop-sandbox"]
    assert services[sandbox["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    bot = workloads()["opsloop-bot"]["spec"]["template"]["spec"]["containers"][0]
    urls = env_of(bot)["OPSLOOP_SANDBOX_URL"]["value"].split(",")
    expected = {
        f"http://opsloop-sandbox-{n}.opsloop-sandbox:8700"
        for n in range(sandbox["spec"]["replicas"])
    }
    assert set(urls) == expected  # every replica, each keeping its own workspaces
    database = urlsplit(of_kind("Secret")["opsloop"]["stringData"]["OPSLOOP_DATABASE_URL"])
    assert database.hostname in services and database.port == 5432
    assert (
        sets[database.hostname]["spec"]["template"]["spec"]["containers"][0]["image"]
        == "postgres:16"
    )


# -- compose ---------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def example_env() -> dict[str, str]:
    """The variables deploy/.env.example sets (commented ones are optional)."""
    found = {}
    for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name.strip()] = value.strip()
    return found


def test_compose_reads_the_env_file_next_to_it_that_the_example_fills() -> None:
    bot = compose()["services"]["bot"]
    assert bot["env_file"] == [".env"]  # deploy/.env: the compose file's own directory
    used = set(re.findall(r"\$\{([A-Z_]+)", json.dumps(compose())))  # not the comments
    assert used <= set(example_env()), used - set(example_env())
    assert set(example_env()) <= settings_env() | {"POSTGRES_PASSWORD"}


def test_compose_runs_postgres_the_sandbox_and_a_socket_mode_bot_with_a_provider() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "sandbox", "bot"}
    assert all(s.get("healthcheck") for s in services.values())
    bot, sandbox = services["bot"], services["sandbox"]
    command, params = parse_command(bot["command"])
    assert command == "slack" and not params["http"]  # Socket Mode, by SLACK_APP_TOKEN
    assert f"127.0.0.1:{params['metrics_port']}/healthz" in " ".join(bot["healthcheck"]["test"])
    assert {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"} <= set(example_env())
    provider = example_env()["OPSLOOP_PROVIDER"]
    assert provider in PROVIDERS and example_env()["OPSLOOP_MODEL"]
    assert PROVIDER_KEYS[provider] in example_env()
    assert {"OPSLOOP_PROVIDER", "OPSLOOP_MODEL"} <= set(bot["environment"])
    assert set(bot["environment"]) <= settings_env()
    sandbox_command, sandbox_params = parse_command(sandbox["command"])
    assert sandbox_command == "sandbox"
    url = urlsplit(bot["environment"]["OPSLOOP_SANDBOX_URL"])
    assert (url.hostname, url.port) == ("sandbox", sandbox_params["port"])
    database = urlsplit(
        bot["environment"]["OPSLOOP_DATABASE_URL"].replace("${", "").replace("}", "")
    )
    assert database.hostname == "postgres" and database.port == 5432
    assert {k: v["condition"] for k, v in bot["depends_on"].items()} == {
        "postgres": "service_healthy",
        "sandbox": "service_healthy",
    }


@pytest.mark.parametrize("service", ["bot", "sandbox"])
def test_compose_builds_the_image_and_mounts_files_that_exist(service: str) -> None:
    spec = compose()["services"][service]
    assert (
        DEPLOY.parent
        / spec["build"]["context"].removeprefix("..").lstrip("/")
        / spec["build"]["dockerfile"]
    ).is_file()
    for volume in spec.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).is_file(), volume
        else:
            assert source in compose()["volumes"], volume
