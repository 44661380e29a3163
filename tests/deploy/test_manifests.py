"""The production deployment assets (deploy/docker, deploy/k8s) agree with the code and the docs.

No cluster and no Docker engine: the manifests are parsed with PyYAML and checked against the
URLconf, the settings, the README's configuration reference and the entrypoint's subcommands.
Settings are only loaded in subprocesses; nothing here touches the database.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
ENTRYPOINT = DOCKER / "entrypoint.sh"
GUNICORN_CONF = DOCKER / "gunicorn.conf.py"
NAMESPACE = "baton"
# What the image's entrypoint must offer (the brief of the deployment, and deploy/README.md).
PROCESS_COMMANDS = {"web", "worker", "beat", "mqtt", "migrate"}


# --- loading ------------------------------------------------------------------------------------


def _manifest_files() -> list[Path]:
    return sorted([*K8S.glob("*.yaml"), *K8S.glob("*.yml")])


def _documents() -> list[tuple[str, dict]]:
    docs = []
    for path in _manifest_files():
        with path.open(encoding="utf-8") as handle:
            docs += [(path.name, doc) for doc in yaml.safe_load_all(handle) if doc is not None]
    return docs


DOCS = _documents()


def _of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in DOCS if doc.get("kind") == kind]


def _one(kind: str, name: str) -> dict:
    matches = [doc for doc in _of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def _component(doc: dict) -> str:
    return doc["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component", "")


WORKLOADS = [doc for doc in DOCS if doc[1].get("kind") in ("Deployment", "Job")]
DEPLOYMENTS = _of_kind("Deployment")


def _workload_id(item: tuple[str, dict]) -> str:
    return f"{item[1]['kind']}/{item[1]['metadata']['name']}"


def _containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _web() -> dict:
    webs = [doc for doc in DEPLOYMENTS if _component(doc) == "web"]
    assert len(webs) == 1, "expected exactly one web Deployment"
    return webs[0]


def _readme_variables(path: Path, heading: str) -> set[str]:
    """Variable names in the first column of the table under `heading` (a `## `/`### ` title)."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^#+ {re.escape(heading)}\s*$(.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"{path.name} has no section {heading!r}"
    names: set[str] = set()
    for line in match.group(1).splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    assert names, f"no variables found in {path.name} › {heading}"
    return names


MAIN_README_VARIABLES = _readme_variables(ROOT / "README.md", "Configuration reference")
IMAGE_VARIABLES = _readme_variables(ROOT / "deploy" / "README.md", "Image variables")


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line}" if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def _entrypoint_subcommands() -> set[str]:
    """The patterns of the entrypoint's `case "$command" in` arms."""
    text = ENTRYPOINT.read_text(encoding="utf-8")
    block = re.search(r'case "\$command" in\n(.*?)\nesac', text, re.DOTALL)
    assert block, 'entrypoint.sh has no `case "$command" in ... esac`'
    names: set[str] = set()
    for pattern in re.findall(r"^\s{2}([^\s#][^)\n]*)\)\s*$", block.group(1), re.MULTILINE):
        names.update(word.strip() for word in pattern.split("|") if word.strip() not in ("*", ""))
    return names


def _settings_subprocess(env_overrides: dict[str, str], code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_overrides and k not in ("BATON_EMBEDDED_SERVICES", "DJANGO_ENV")}
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _cpu(value: str | int | float) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def _memory(value: str | int) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", str(value))
    assert match, f"unreadable memory quantity {value!r}"
    return int(float(match.group(1)) * _MEMORY_UNITS.get(match.group(2) or "", 1))


# --- every manifest -----------------------------------------------------------------------------


def test_every_manifest_parses_and_lives_in_the_namespace():
    assert _manifest_files(), "deploy/k8s holds no YAML"
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Job", "Service", "Ingress", "PodDisruptionBudget"} <= kinds
    for filename, doc in DOCS:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), filename
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{filename}: {doc['kind']} outside namespace {NAMESPACE}"
    assert _one("Namespace", NAMESPACE)


def test_all_workloads_run_one_image():
    """The deploy commands swap one image reference; every container must carry the same."""
    images = {container["image"] for _, workload in WORKLOADS for container in _containers(workload)}
    assert len(images) == 1, images


@pytest.mark.parametrize("item", WORKLOADS, ids=_workload_id)
def test_containers_run_as_non_root_on_a_read_only_root(item):
    _, workload = item
    pod = workload["spec"]["template"]["spec"]
    pod_ctx = pod.get("securityContext", {})
    tmp_volumes = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for container in _containers(workload):
        ctx = {**pod_ctx, **container.get("securityContext", {})}
        name = container["name"]
        assert ctx.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
        assert ctx.get("runAsUser", 1) != 0 and ctx.get("runAsGroup", 1) != 0, f"{name}: runs as root"
        assert ctx.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation"
        assert ctx.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem"
        assert "ALL" in ctx.get("capabilities", {}).get("drop", []), f"{name}: capabilities not dropped"
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp and tmp[0]["name"] in tmp_volumes, f"{name}: /tmp must be an emptyDir on a read-only root"
    assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False


@pytest.mark.parametrize("item", WORKLOADS, ids=_workload_id)
def test_containers_have_resource_requests_and_limits(item):
    _, workload = item
    for container in _containers(workload):
        resources = container.get("resources", {})
        for resource in ("cpu", "memory"):
            request = resources.get("requests", {}).get(resource)
            limit = resources.get("limits", {}).get(resource)
            assert request is not None and limit is not None, f"{container['name']}: {resource} request and limit"
            parse = _cpu if resource == "cpu" else _memory
            assert parse(request) <= parse(limit), f"{container['name']}: {resource} request above its limit"
        # Small nodes: no single container may ask for more than one node could give.
        assert _memory(resources["limits"]["memory"]) <= 2 * 2**30
        assert _cpu(resources["limits"]["cpu"]) <= 2


def test_deployment_selectors_match_their_pods_and_no_other():
    for deployment in DEPLOYMENTS:
        selector = deployment["spec"]["selector"]["matchLabels"]
        for other in DEPLOYMENTS:
            labels = other["spec"]["template"]["metadata"]["labels"]
            selects = all(labels.get(k) == v for k, v in selector.items())
            assert selects == (other is deployment), f"{deployment['metadata']['name']} selector vs {other['metadata']['name']} pods"


# --- web ----------------------------------------------------------------------------------------


def _routes() -> set[str]:
    source = (ROOT / "config" / "urls_common.py").read_text(encoding="utf-8")
    return {"/" + route for route in re.findall(r'path\(\s*"([^"]*)"', source)}


def test_web_probes_use_routes_that_exist_with_a_console_host():
    web = _web()
    container = next(c for c in web["spec"]["template"]["spec"]["containers"] if c.get("args", ["web"])[0] == "web")
    probes = {kind: container.get(kind) for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz?checks=database,broker"
    routes = _routes()
    config = _one("ConfigMap", "baton-config")["data"]
    console_hosts = [h.strip() for h in config["BATON_CONSOLE_HOSTS"].split(",")]
    port_names = {p.get("name") for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
    for kind, probe in probes.items():
        if probe is None:
            continue
        get = probe["httpGet"]
        assert get["path"].split("?")[0] in routes, f"{kind} asks {get['path']}, which config/urls_common.py does not route"
        assert get["port"] in port_names, f"{kind} port {get['port']} is not a container port"
        headers = {h["name"].lower(): h["value"] for h in get.get("httpHeaders", [])}
        # Any other host gets the unknown-host page (or a tenant); the console host answers.
        assert headers.get("host") in console_hosts, f"{kind}: Host header must be one of BATON_CONSOLE_HOSTS"
        # Production redirects plain HTTP to HTTPS unless the proxy header says https.
        assert headers.get("x-forwarded-proto") == "https", f"{kind}: needs X-Forwarded-Proto: https"


def test_web_is_covered_by_service_ingress_and_disruption_budget():
    web = _web()
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in web["spec"]["template"]["spec"]["containers"][0]["ports"]}
    services = {s["metadata"]["name"]: s for s in _of_kind("Service")}
    for service in services.values():
        assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names or port["targetPort"] in (8000,)
    pdbs = [
        p for p in _of_kind("PodDisruptionBudget") if all(pod_labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())
    ]
    assert pdbs, "no PodDisruptionBudget selects the web pods"
    assert pdbs[0]["spec"].get("minAvailable", 0) < web["spec"]["replicas"], "the budget would block every drain"

    config = _one("ConfigMap", "baton-config")["data"]
    suffix = config["BATON_TENANT_DOMAIN_SUFFIX"]
    console_hosts = {h.strip() for h in config["BATON_CONSOLE_HOSTS"].split(",")} - {"localhost", "127.0.0.1"}
    hosts: set[str] = set()
    for ingress in _of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            hosts.add(rule["host"])
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services, f"Ingress rule {rule['host']} points at no Service"
        tls_hosts = {h for entry in ingress["spec"].get("tls", []) for h in entry["hosts"]}
        assert {rule["host"] for rule in ingress["spec"]["rules"]} <= tls_hosts, "every Ingress host needs TLS"
    assert f"*.{suffix}" in hosts, "tenant hosts (<slug>.BATON_TENANT_DOMAIN_SUFFIX) need a wildcard rule"
    assert console_hosts and console_hosts <= hosts, "the console host needs an Ingress rule"


def test_configmap_is_a_working_production_configuration(tmp_path):
    """The ConfigMap plus real secrets passes production's checks, and its hosts serve the probes."""
    config = _one("ConfigMap", "baton-config")["data"]
    secrets = {
        "SECRET_KEY": "x" * 20 + "deploy-test-signing-key-with-enough-length-0123456789",
        "DATABASE_URL": "postgresql://baton@db.invalid:5432/baton",
        "REDIS_URL": "redis://redis.invalid:6379/0",
        "BATON_ENCRYPTION_KEYS": "ZGVwbG95LXRlc3Qta2V5LWRlcGxveS10ZXN0LWtleTA=",
        "BATON_METRICS_TOKEN": "deploy-test-token",
    }
    code = (
        "import json, django; django.setup();"
        "from django.conf import settings; from django.http.request import validate_host;"
        "print(json.dumps({'ssl_redirect': settings.SECURE_SSL_REDIRECT, 'proxy_header': settings.SECURE_PROXY_SSL_HEADER,"
        "'console': settings.BATON_CONSOLE_HOSTS, 'localhost_allowed': validate_host('localhost', settings.ALLOWED_HOSTS),"
        "'tenant_allowed': validate_host('acme.' + settings.BATON_TENANT_DOMAIN_SUFFIX, settings.ALLOWED_HOSTS),"
        "'console_allowed': all(validate_host(h, settings.ALLOWED_HOSTS) for h in settings.BATON_CONSOLE_HOSTS)}))"
    )
    # In a pod the entrypoint makes the ConfigMap's PROMETHEUS_MULTIPROC_DIR; counters created at
    # startup (connectors.outbound) need it to exist, and here nothing makes /tmp/prometheus.
    multiprocess = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = _settings_subprocess({**{k: str(v) for k, v in config.items()}, **secrets, **multiprocess}, code)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["ssl_redirect"] is True and loaded["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert loaded["localhost_allowed"] and loaded["tenant_allowed"] and loaded["console_allowed"]
    assert "localhost" in loaded["console"]


# --- variables ----------------------------------------------------------------------------------


def test_configmap_and_secret_keys_are_in_the_readme_configuration_table():
    keys = set(_one("ConfigMap", "baton-config")["data"]) | set(_one("Secret", "baton-secrets")["stringData"])
    missing = sorted(keys - MAIN_README_VARIABLES)
    assert not missing, f"README.md's configuration reference does not document {missing}"


def test_every_variable_a_manifest_sets_is_documented():
    """Container `env` entries: application settings in README.md, process sizing in deploy/README.md."""
    documented = MAIN_README_VARIABLES | IMAGE_VARIABLES
    config_maps = {c["metadata"]["name"] for c in _of_kind("ConfigMap")}
    secrets = {s["metadata"]["name"] for s in _of_kind("Secret")}
    for _, workload in WORKLOADS:
        for container in _containers(workload):
            names = {entry["name"] for entry in container.get("env", [])}
            assert not names - documented, f"{container['name']}: undocumented {sorted(names - documented)}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets


def test_variables_the_image_reads_are_documented():
    python_reads = r'(?:os\.environ\.get|_env_int)\(\s*"([A-Z][A-Z0-9_]*)"'
    read = set(re.findall(python_reads, GUNICORN_CONF.read_text(encoding="utf-8")))
    entrypoint = ENTRYPOINT.read_text(encoding="utf-8")
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?::-|\})", entrypoint)) | set(re.findall(python_reads, entrypoint))
    assert {"WEB_CONCURRENCY", "CELERY_QUEUES"} <= read
    missing = sorted(read - MAIN_README_VARIABLES - IMAGE_VARIABLES)
    assert not missing, f"deploy/README.md's image variables do not document {missing}"


def test_secret_template_holds_placeholders_only():
    secret = _one("Secret", "baton-secrets")
    assert "data" not in secret, "use stringData placeholders, never encoded values"
    values = secret["stringData"]
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "BATON_ENCRYPTION_KEYS", "BATON_METRICS_TOKEN"} <= set(values)
    for key, value in values.items():
        assert value == "" or "CHANGE_ME" in value, f"{key} looks like a real value"


# --- processes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["beat", "mqtt"])
def test_singletons_are_a_single_replica_recreated(command):
    """Two beats send every periodic task twice; two MQTT listeners share client ids and kick each other off."""
    singletons = [d for d in DEPLOYMENTS if any(c.get("args", [None])[0] == command for c in _containers(d))]
    assert len(singletons) == 1, f"exactly one Deployment may run {command}"
    singleton = singletons[0]
    assert singleton["spec"]["replicas"] == 1
    assert singleton["spec"]["strategy"]["type"] == "Recreate", "a rolling update would run two for a while"


def test_mqtt_runs_the_listener_and_has_time_to_disconnect():
    entrypoint = ENTRYPOINT.read_text(encoding="utf-8")
    assert re.search(r"^\s*mqtt\)\s*\n(?:\s*#.*\n)*\s*exec python manage\.py mqtt_listen \"\$@\"", entrypoint, re.MULTILINE)
    reset = re.search(r'^if \[\[ (.*) \]\]; then\n\s*rm -rf "\$PROMETHEUS_MULTIPROC_DIR"', entrypoint, re.MULTILINE)
    assert reset and '"$command" == mqtt' in reset.group(1), "a restarted listener must count its metrics afresh"
    (listener,) = [d for d in DEPLOYMENTS if any(c.get("args", [None])[0] == "mqtt" for c in _containers(d))]
    assert listener["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_workers_consume_every_queue_the_code_routes_to():
    code = (
        "import json, django; django.setup(); from django.conf import settings;"
        "print(json.dumps(sorted({settings.CELERY_TASK_DEFAULT_QUEUE} | {r['queue'] for r in settings.CELERY_TASK_ROUTES.values()})))"
    )
    result = _settings_subprocess({}, code)
    assert result.returncode == 0, result.stderr[-2000:]
    routed = set(json.loads(result.stdout.strip().splitlines()[-1]))
    consumed: dict[str, list[str]] = {}
    for deployment in DEPLOYMENTS:
        for container in _containers(deployment):
            if container.get("args", [None])[0] != "worker":
                continue
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            queues = env.get("CELERY_QUEUES", "default,engine,connectors,documents").split(",")
            for queue in queues:
                consumed.setdefault(queue.strip(), []).append(deployment["metadata"]["name"])
    assert {"engine", "connectors", "documents"} <= routed
    assert routed <= set(consumed), f"no worker consumes {sorted(routed - set(consumed))}"
    assert set(consumed) <= routed, f"workers listen on queues nothing routes to: {sorted(set(consumed) - routed)}"
    assert all(len(names) == 1 for names in consumed.values()), f"a queue is split over Deployments: {consumed}"


def test_migration_job_runs_baton_migrate_once():
    jobs = _of_kind("Job")
    assert len(jobs) == 1
    job = jobs[0]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] <= 2 and job["spec"].get("activeDeadlineSeconds")
    assert [c["args"] for c in pod["containers"]] == [["migrate"]]
    assert re.search(r"^\s*migrate\)\s*\n\s*exec python manage\.py baton_migrate\b", ENTRYPOINT.read_text(encoding="utf-8"), re.MULTILINE)


# --- image --------------------------------------------------------------------------------------


def test_entrypoint_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ENTRYPOINT.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")


def test_dockerfile_and_manifests_use_the_entrypoint_subcommands():
    subcommands = _entrypoint_subcommands()
    assert PROCESS_COMMANDS | {"healthcheck"} <= subcommands
    instructions = _dockerfile_instructions()
    by_keyword: dict[str, list[str]] = {}
    for keyword, args in instructions:
        by_keyword.setdefault(keyword, []).append(args)

    entrypoint = json.loads(by_keyword["ENTRYPOINT"][-1])
    workdir = by_keyword["WORKDIR"][-1]
    assert entrypoint[-1] == f"{workdir}/{ENTRYPOINT.relative_to(ROOT).as_posix()}", "ENTRYPOINT must be the copied entrypoint.sh"
    assert json.loads(by_keyword["CMD"][-1])[0] in subcommands
    healthcheck = by_keyword["HEALTHCHECK"][-1]
    assert json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())[-1] in subcommands
    label = re.search(r'dev\.baton\.commands="([^"]+)"', " ".join(by_keyword["LABEL"]))
    assert label and set(label.group(1).split()) == PROCESS_COMMANDS
    assert set(label.group(1).split()) <= subcommands

    for _, workload in WORKLOADS:
        for container in _containers(workload):
            assert "command" not in container, f"{container['name']}: keep the image's ENTRYPOINT (tini + entrypoint.sh)"
            assert container["args"][0] in subcommands, f"{container['name']}: {container['args'][0]!r} is no subcommand"


def test_dockerfile_builds_a_locked_non_root_production_image():
    instructions = _dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert keywords.count("FROM") >= 2, "multi-stage"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim\b", text, re.MULTILINE)
    assert any(k == "RUN" and "pip install --no-cache-dir -r requirements.lock" in a for k, a in instructions)
    for package in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz", "fonts-"):
        assert package in text, f"WeasyPrint needs {package}"
    user = [a for k, a in instructions if k == "USER"][-1]
    assert user.split(":")[0] not in ("0", "root") and user.split(":")[0].isdigit(), "USER must be a numeric non-root uid"
    assert "8000" in [a for k, a in instructions if k == "EXPOSE"][-1].split()
    envs = " ".join(a for k, a in instructions if k == "ENV")
    assert "DJANGO_ENV=production" in envs
    for secret in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "BATON_ENCRYPTION_KEYS", "BATON_METRICS_TOKEN"):
        assert f"{secret}=" not in envs, f"{secret} must not be baked into the image"


def test_collectstatic_build_step_passes_production_checks():
    """The throwaway values on the collectstatic RUN line satisfy config/settings/safety.py."""
    run = next(a for k, a in [*_dockerfile_instructions()] if k == "RUN" and "collectstatic" in a)
    words = shlex.split(run)
    assignments = dict(w.split("=", 1) for w in words[: next(i for i, w in enumerate(words) if "=" not in w)])
    assert assignments.get("DJANGO_ENV") == "production", "the manifest storage is only used with DJANGO_ENV=production"
    code = "import json, django; django.setup(); from django.conf import settings; print(json.dumps(settings.STORAGES['staticfiles']['BACKEND']))"
    result = _settings_subprocess(assignments, code)
    assert result.returncode == 0, f"production refuses the build values:\n{result.stderr[-2000:]}"
    assert "Manifest" in json.loads(result.stdout.strip().splitlines()[-1])
