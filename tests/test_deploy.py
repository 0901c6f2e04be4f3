"""The deployment files keep their promises (static checks; tests/test_container.py runs the
image's contract, `make lint-deploy` runs hadolint and kubernetes-validate).

- Dockerfile: pinned slim Python base, hash-checked install, fixed non-root UID, read-only
  friendly ENV, exec-form ENTRYPOINT, HEALTHCHECK through `notifier healthcheck`, EXPOSE 9464.
- requirements.lock: every pin hashed, every runtime dependency of pyproject covered.
- Compose: named volume, read-only config, env_file, read_only, the health check.
- Kubernetes: one replica, Recreate, the security context, probes, grace, resources, the
  ConfigMap identical to deploy/config.yaml, the Secret example kept out of the kustomization.
- systemd: the hardening keys (and `systemd-analyze verify`/`security` where installed).
- Replicas on PostgreSQL: the Compose file (a database with a health check and a named volume,
  two stateless read-only replicas with a tmpfs /tmp) and the kustomize overlay (rendered here
  the way kustomize does: two replicas rolled one at a time, a PodDisruptionBudget, no volume
  claim, the database's URL and password from a Secret), and their shared config.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from notifier.config.load import parse_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SECRET_VARS = {"POSTHOG_PERSONAL_API_KEY", "SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "WEBHOOK_SECRET"}
#: The PostgreSQL password of the replicated setups (the database's and the notifier's).
DB_PASSWORD_VAR = "NOTIFIER_DB_PASSWORD"
REPLICAS = DEPLOY / "kubernetes-replicas"
#: Values that pass validation, for checking deploy/config.yaml (the example's are placeholders).
VALID_SECRETS = {
    "POSTHOG_PERSONAL_API_KEY": "phx_deploy_test",
    "SLACK_BOT_TOKEN": "xoxb-deploy-test",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/deploytest",
    "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


# --- Dockerfile ----------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments gone."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            result.append([])
        if result:
            result[-1].append((word, rest))
    return result


def base_image() -> str:
    arg = next(rest for word, rest in instructions() if word == "ARG" and "PYTHON_IMAGE" in rest)
    return arg.partition("=")[2]


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python_3_11() -> None:
    image = base_image()
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms), froms
    lock_python = re.search(r"pip-compile with Python (\d+\.\d+)", lock_text())
    assert lock_python
    assert image.startswith(f"python:{lock_python.group(1)}."), (
        "the lock was made for another Python than the image's: make lock (with Python 3.11)"
    )


def test_dockerfile_installs_from_the_hashed_lock_then_the_package_without_deps() -> None:
    build = " ".join(rest for word, rest in stages()[0] if word == "RUN")
    assert "pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock" in build
    assert "pip install --no-cache-dir --no-deps ." in build
    assert build.index("--require-hashes") < build.index("--no-deps .")


def test_dockerfile_copies_only_what_its_dockerignore_lets_in() -> None:
    sources = []
    for stage in stages():
        for word, rest in stage:
            if word == "COPY" and "--from" not in rest:
                sources += rest.split()[:-1]
    assert sorted(sources) == sorted(
        ["deploy/requirements.lock", "pyproject.toml", "README.md", "notifier"]
    )
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    assert set(sources) <= allowed


def test_dockerfile_runtime_stage_contract() -> None:
    final = stages()[-1]
    words = [word for word, _ in final]
    env = " ".join(rest for word, rest in final if word == "ENV").split()

    def one(word: str) -> str:
        values = [rest for w, rest in final if w == word]
        assert len(values) == 1, (word, values)
        return values[0]

    assert one("USER") == "10001:10001"
    last_run = max(i for i, w in enumerate(words) if w == "RUN")
    assert words.index("USER") > last_run  # nothing runs as root after it
    assert "useradd --system --uid 10001" in " ".join(rest for w, rest in final if w == "RUN")
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "NOTIFIER_CONFIG=/etc/notifier/config.yaml",
        "TMPDIR=/var/lib/notifier",
        "HOME=/nonexistent",
    ):
        assert setting in env, setting
    assert json.loads(one("VOLUME")) == ["/var/lib/notifier"]
    assert one("EXPOSE") == "9464"
    assert json.loads(one("ENTRYPOINT")) == ["notifier"]  # exec form: Python gets SIGTERM
    assert json.loads(one("CMD")) == ["run"]
    healthcheck = one("HEALTHCHECK")
    assert healthcheck.split(" CMD ")[1].strip() == '["notifier", "healthcheck"]'
    text = (DEPLOY / "Dockerfile").read_text()
    assert not re.search(r"\b(curl|wget)\b", "\n".join(rest for _, rest in instructions()))
    assert "apt-get" not in text


# --- the lock ------------------------------------------------------------------------------


def lock_text() -> str:
    return (DEPLOY / "requirements.lock").read_text()


def locked() -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) from requirements.lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", lock_text()):
        first = block.split()[0] if block.strip() else "#"
        if first.startswith("#"):
            continue
        name, _, version = first.partition("==")
        assert version, f"not pinned with ==: {first}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
        pins[canonicalize_name(name)] = (version, hashes)
    return pins


def test_lock_pins_every_package_with_hashes() -> None:
    pins = locked()
    assert pins
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash"
    assert "--index-url" not in lock_text()  # portable: whatever index pip is configured with
    assert "make lock" in lock_text()


def test_lock_covers_every_runtime_dependency_of_pyproject() -> None:
    """A dependency added to pyproject.toml without `make lock` would be missing from the image
    (pip install --no-deps). tests/test_container.py also runs `pip check` on the result."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in deploy/requirements.lock: run make lock"
        assert req.specifier.contains(pins[name][0], prereleases=True), (
            f"{req.name}=={pins[name][0]} does not satisfy {req}: run make lock"
        )


# --- configuration and secrets -------------------------------------------------------------


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, line
            assert key == key.strip(), line
            assert key.isupper(), line
            pairs[key] = value
    return pairs


def test_env_example_lists_every_secret_with_a_placeholder() -> None:
    example = env_example()
    assert set(example) == SECRET_VARS | {DB_PASSWORD_VAR}
    assert all("replace" in value for value in example.values()), example
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_container_config_is_valid_and_keeps_state_in_the_volume() -> None:
    text = (DEPLOY / "config.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+)\}", text))  # no :-default
    assert required <= set(env_example()), required - set(env_example())
    settings = parse_config(text, source="deploy/config.yaml", env=VALID_SECRETS, base_dir=DEPLOY)
    assert settings.state.path == Path("/var/lib/notifier/state.db")
    assert settings.http.listen == "0.0.0.0:9464"
    assert settings.poll.interval >= 60  # the capacity figures in docs/operations.md assume it


# --- Compose -------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text()))


def test_compose_contract() -> None:
    spec = compose()
    assert list(spec["services"]) == ["notifier"]
    svc = spec["services"]["notifier"]
    assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
    assert svc["read_only"] is True
    assert svc["user"] == "10001:10001"
    assert svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    assert "deploy" not in svc  # one replica per state volume
    assert "scale" not in svc
    # Secrets from an env file next to the compose file (.env.example says what goes in it).
    assert svc["env_file"] == [".env"]
    assert (DEPLOY / ".env.example").is_file()
    assert not set(svc.get("environment", {})) & SECRET_VARS  # never inline
    mounts = {m["target"]: m for m in svc["volumes"]}
    state = mounts["/var/lib/notifier"]
    assert state["type"] == "volume"
    assert state["source"] in spec["volumes"]  # a named volume, declared
    config = mounts["/etc/notifier/config.yaml"]
    assert config == {
        "type": "bind",
        "source": "./config.yaml",
        "target": "/etc/notifier/config.yaml",
        "read_only": True,
    }
    assert (DEPLOY / config["source"]).is_file()
    assert svc["environment"]["NOTIFIER_CONFIG"] == config["target"]
    assert svc["healthcheck"]["test"] == ["CMD", "notifier", "healthcheck"]
    assert any(str(p).endswith(":9464") for p in svc["ports"])
    grace = float(svc["environment"]["NOTIFIER_STOP_GRACE"])
    assert grace < float(svc["stop_grace_period"].rstrip("s"))


# --- Kubernetes ----------------------------------------------------------------------------


def k8s(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((K8S / name).read_text()))


def pod_spec() -> dict[str, Any]:
    return dict(k8s("deployment.yaml")["spec"]["template"]["spec"])


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return dict(only)


def test_kustomization_lists_the_resources_but_not_the_secret_example() -> None:
    kust = k8s("kustomization.yaml")
    assert set(kust["resources"]) == {"deployment.yaml", "pvc.yaml", "service.yaml"}
    listed = (K8S / "kustomization.yaml").read_text().split("resources:")[1]
    assert "secret.example.yaml" not in listed
    for resource in kust["resources"]:
        assert (K8S / resource).is_file()
    (generator,) = kust["configMapGenerator"]
    assert generator["files"] == ["config.yaml"]
    # kustomize loads no file from outside its folder: the copy must be the same file.
    assert (K8S / "config.yaml").read_bytes() == (DEPLOY / "config.yaml").read_bytes(), (
        "deploy/kubernetes/config.yaml differs from deploy/config.yaml: cp deploy/config.yaml "
        "deploy/kubernetes/config.yaml"
    )
    config_volume = next(v for v in pod_spec()["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == generator["name"]


def test_deployment_runs_one_pod_recreated_never_rolled() -> None:
    deployment = k8s("deployment.yaml")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    text = (K8S / "deployment.yaml").read_text()
    why = text[: text.index("type: Recreate")]
    assert "SQLite" in why
    assert "ReadWriteOnce" in why  # the comment says why
    pvc = k8s("pvc.yaml")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    claim = next(v for v in pod_spec()["volumes"] if "persistentVolumeClaim" in v)
    assert claim["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_deployment_security_context() -> None:
    pod, ctr = pod_spec(), container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = ctr["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 10001
    mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
    assert set(mounts) == {"/var/lib/notifier", "/etc/notifier"}  # no /tmp: TMPDIR is the volume
    assert mounts["/etc/notifier"]["readOnly"] is True


def test_deployment_probes_grace_and_resources() -> None:
    pod, ctr = pod_spec(), container()
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    assert ports == {"metrics": 9464}
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {e["name"]: e["value"] for e in ctr["env"]}
    assert env["NOTIFIER_CONFIG"] == "/etc/notifier/config.yaml"
    # In-flight work gets NOTIFIER_STOP_GRACE seconds after SIGTERM; kubelet's SIGKILL comes
    # terminationGracePeriodSeconds after it: leave a margin for the exit itself.
    assert float(env["NOTIFIER_STOP_GRACE"]) + 3 <= pod["terminationGracePeriodSeconds"]
    resources = ctr["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]
    assert "VmHWM" in (K8S / "deployment.yaml").read_text()  # sized from a measurement
    secret = k8s("secret.example.yaml")
    assert ctr["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert set(secret["stringData"]) == SECRET_VARS
    service = k8s("service.yaml")
    labels = k8s("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_generated_config_map_is_a_valid_resource() -> None:
    """What kustomize's configMapGenerator makes (without the hash suffix), checked against
    the Kubernetes schema like the other resources are by `make lint-deploy`."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    (generator,) = k8s("kustomization.yaml")["configMapGenerator"]
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": generator["name"]},
        "data": {name: (K8S / name).read_text() for name in generator["files"]},
    }
    kubernetes_validate.validate(config_map, "1.30.0", strict=True)


# --- systemd -------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd" / "notifier.service"


def unit() -> dict[str, list[str]]:
    """``Section.Key`` → every value given (a key may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, raw
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def test_systemd_unit_is_hardened() -> None:
    keys = unit()

    def value(key: str) -> str:
        values = keys[f"Service.{key}"]
        return values[-1]

    expected = {
        "DynamicUser": "yes",
        "StateDirectory": "notifier",
        "ConfigurationDirectory": "notifier",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2 65",
    }
    for key, wanted in expected.items():
        assert value(key) == wanted, key
    assert set(value("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in keys["Service.SystemCallFilter"]
    assert value("ExecStart") == "/opt/posthog-signal-notifier/bin/notifier run"
    assert value("EnvironmentFile").startswith("/etc/notifier/")
    environment = dict(
        pair.split("=", 1) for line in keys["Service.Environment"] for pair in line.split()
    )
    assert environment["NOTIFIER_CONFIG"] == "/etc/notifier/config.yaml"
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert float(environment["NOTIFIER_STOP_GRACE"]) + 3 <= float(value("TimeoutStopSec"))
    # The same config.yaml works: state.path is in the StateDirectory.
    assert yaml.safe_load((DEPLOY / "config.yaml").read_text())["state"]["path"].startswith(
        "/var/lib/notifier/"
    )


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    notifier = Path(sys.executable).with_name("notifier")
    target = notifier if notifier.exists() else Path(shutil.which("true") or "/bin/true")
    text = UNIT.read_text().replace("/opt/posthog-signal-notifier/bin/notifier", str(target))
    path = tmp_path / "notifier.service"
    path.write_text(text)
    return path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_the_unit_and_rates_it_well(verifiable_unit: Path) -> None:
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(verifiable_unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    # verify exits 0 on unknown keys and bad values too: any message is a failure here.
    said = verify.stdout + verify.stderr
    assert verify.returncode == 0, said
    assert not said.strip(), said
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(verifiable_unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    if "--offline" in security.stderr and "unrecognized" in security.stderr:
        pytest.skip("this systemd-analyze has no offline security review (systemd < 252)")
    assert security.returncode == 0, security.stdout[-3000:] + security.stderr
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert level, security.stdout[-500:]
    assert float(level.group(1)) <= 2.0, security.stdout[-500:]


# --- replicas on PostgreSQL: the configuration -------------------------------------------

DB_ENV = {**VALID_SECRETS, DB_PASSWORD_VAR: "a-db-password-for-the-test"}


def test_postgres_config_is_the_container_config_with_the_state_in_postgresql() -> None:
    text = (DEPLOY / "config.postgres.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+)\}", text))  # no :-default
    assert required <= set(env_example()), required - set(env_example())
    settings = parse_config(text, source="deploy/config.postgres.yaml", env=DB_ENV, base_dir=DEPLOY)
    assert settings.state.backend == "postgresql"
    assert settings.state.url == "postgresql://notifier@db:5432/notifier"  # the Compose service
    assert settings.state.password is not None
    assert settings.state.password.get_secret_value() == DB_ENV[DB_PASSWORD_VAR]
    assert settings.state.lease_ttl == 30
    assert settings.http.listen == "0.0.0.0:9464"
    # Kubernetes gives the URL through the Secret.
    url = "postgresql://notifier@postgres.example:5432/notifier"
    elsewhere = parse_config(
        text, source="config", env={**DB_ENV, "NOTIFIER_DB_URL": url}, base_dir=DEPLOY
    )
    assert elsewhere.state.url == url
    # Everything else is deploy/config.yaml's: one place to edit projects, sinks and rules.
    single = yaml.safe_load((DEPLOY / "config.yaml").read_text())
    replicated = yaml.safe_load(text)
    assert {k: v for k, v in replicated.items() if k != "state"} == {
        k: v for k, v in single.items() if k != "state"
    }, "deploy/config.postgres.yaml differs from deploy/config.yaml outside state:"


# --- replicas on PostgreSQL: Compose -------------------------------------------------------


def compose_postgres() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.postgres.yml").read_text()))


def replica_services() -> dict[str, dict[str, Any]]:
    services = compose_postgres()["services"]
    return {name: svc for name, svc in services.items() if name.startswith("notifier")}


def test_compose_postgres_runs_a_database_and_two_replicas_of_the_same_image() -> None:
    spec = compose_postgres()
    replicas = replica_services()
    assert set(spec["services"]) == {"db", *replicas}
    assert len(replicas) == 2
    single = compose()["services"]["notifier"]
    for name, svc in replicas.items():
        assert svc["build"] == single["build"], name
        assert svc["image"] == single["image"], name
        assert svc["command"] == ["run"], name
        assert svc["restart"] == "unless-stopped", name
        assert svc["depends_on"] == {"db": {"condition": "service_healthy"}}, name
        assert svc["healthcheck"]["test"] == ["CMD", "notifier", "healthcheck"], name
        grace = float(svc["environment"]["NOTIFIER_STOP_GRACE"])
        assert grace < float(svc["stop_grace_period"].rstrip("s")), name
    hosts = [svc["hostname"] for svc in replicas.values()]
    assert len(set(hosts)) == 2  # the replica ids in the logs start with the host name
    published = [p for svc in replicas.values() for p in svc["ports"]]
    assert len({str(p).rsplit(":", 2)[-2] for p in published}) == len(published)  # no clash


def test_compose_postgres_replicas_are_stateless_and_read_only() -> None:
    spec = compose_postgres()
    for name, svc in replica_services().items():
        assert svc["read_only"] is True, name
        assert svc["user"] == "10001:10001", name
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        # No volume: the only mount is the config; the heartbeat goes to the tmpfs /tmp.
        (config,) = svc["volumes"]
        assert config == {
            "type": "bind",
            "source": "./config.postgres.yaml",
            "target": "/etc/notifier/config.yaml",
            "read_only": True,
        }, name
        assert (DEPLOY / config["source"]).is_file()
        assert svc["environment"]["NOTIFIER_CONFIG"] == config["target"]
        assert [t.split(":")[0] for t in svc["tmpfs"]] == ["/tmp"], name
        assert svc["environment"]["TMPDIR"] == "/tmp", name  # the image's TMPDIR is the volume
    assert set(spec["volumes"]) == {"notifier-db"}  # the database's, nothing for the notifier


def test_compose_postgres_database_has_a_health_check_a_volume_and_no_inline_password() -> None:
    db = compose_postgres()["services"]["db"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?-[a-z]+", db["image"]), db["image"]
    assert db["restart"] == "unless-stopped"
    (data,) = db["volumes"]
    assert data["type"] == "volume"
    assert data["source"] == "notifier-db"
    assert data["target"] == "/var/lib/postgresql/data"
    check = db["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"], check
    env = db["environment"]
    # The notifier's URL names this user, database and service.
    settings = parse_config(
        (DEPLOY / "config.postgres.yaml").read_text(), source="c", env=DB_ENV, base_dir=DEPLOY
    )
    assert settings.state.url == f"postgresql://{env['POSTGRES_USER']}@db:5432/{env['POSTGRES_DB']}"
    assert ["-U", env["POSTGRES_USER"], "-d", env["POSTGRES_DB"]] == check[2:6]
    # The password only through the environment (deploy/.env), never written here; the
    # database gets that one variable, not the notifier's other secrets.
    assert re.fullmatch(r"\$\{NOTIFIER_DB_PASSWORD:\?[^}]+\}", env["POSTGRES_PASSWORD"])
    assert "env_file" not in db
    assert "ports" not in db  # reached by the replicas on the Compose network only
    for name, svc in replica_services().items():
        assert svc["env_file"] == [".env"], name
        assert not set(svc["environment"]) & (SECRET_VARS | {DB_PASSWORD_VAR}), name


# --- replicas on PostgreSQL: the kustomize overlay ----------------------------------------

#: The merge keys of the lists a strategic-merge patch of a Deployment merges item by item
#: (every other list is replaced), from the Kubernetes API's patchMergeKey.
MERGE_KEYS = {
    "containers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "topologySpreadConstraints": "topologyKey",
}


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """The part of Kubernetes' strategic merge patch the overlay uses: maps merged key by key
    (null deletes), keyed lists merged item by item (``$patch: delete`` removes one)."""
    if isinstance(original, dict) and isinstance(patch, dict):
        merged = dict(original)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = value
        return merged
    if isinstance(original, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        rest = {item[key]: item for item in original}
        merged_items = []  # the patch's items first, in its order; then the others
        for change in patch:
            before = rest.pop(change[key], None)
            if change.get("$patch") == "delete":
                assert before is not None, f"nothing to delete in {field}: {change}"
            else:
                merged_items.append(change if before is None else strategic_merge(before, change))
        return merged_items + list(rest.values())
    return patch


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """What ``kustomize build folder`` makes of our kustomizations (resources and bases,
    configMapGenerator with create/replace, strategic-merge patches, labels, images), without
    the ConfigMap's hash suffix. ``kubectl kustomize`` is compared with it where installed."""
    kust = yaml.safe_load((folder / "kustomization.yaml").read_text())
    found: list[dict[str, Any]] = []
    for entry in kust.get("resources", []):
        path = folder / entry
        if path.is_dir():
            found += kustomize(path)
        else:
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for generator in kust.get("configMapGenerator", []):
        metadata = {"name": generator["name"]}
        key = ("ConfigMap", generator["name"])
        if generator.get("behavior") == "replace":  # the data, keeping the base's labels
            (old,) = [r for r in found if (r["kind"], r["metadata"]["name"]) == key]
            found.remove(old)
            metadata = old["metadata"]
        data = {file: (folder / file).read_text() for file in generator["files"]}
        found.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    for entry in kust.get("patches", []):
        patch = yaml.safe_load((folder / entry["path"]).read_text())
        key = (patch["kind"], patch["metadata"]["name"])
        (at,) = [i for i, r in enumerate(found) if (r["kind"], r["metadata"]["name"]) == key]
        if patch.get("$patch") == "delete":
            del found[at]
        else:
            found[at] = strategic_merge(found[at], patch)
    for label in kust.get("labels", []):
        assert label.get("includeSelectors") is False
        for resource in found:
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in kust.get("images", []):
        for resource in found:
            pod = resource.get("spec", {}).get("template", {}).get("spec", {})
            for ctr in pod.get("containers", []):
                if ctr["image"].split(":")[0] == image["name"]:
                    ctr["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return found


def overlay() -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["kind"], r["metadata"]["name"]): r for r in kustomize(REPLICAS)}


def overlay_deployment() -> dict[str, Any]:
    return overlay()[("Deployment", "notifier")]


def test_overlay_runs_two_replicas_rolled_one_at_a_time_with_a_disruption_budget() -> None:
    deployment = overlay_deployment()
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pdbs = [r for r in overlay().values() if r["kind"] == "PodDisruptionBudget"]
    (pdb,) = pdbs
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    pod = deployment["spec"]["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]  # not both on one node
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"] == deployment["spec"]["selector"]


def test_overlay_has_no_volume_claim_and_a_scratch_tmp() -> None:
    resources = overlay()
    assert not [key for key in resources if key[0] == "PersistentVolumeClaim"]
    pod = overlay_deployment()["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (ctr,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/etc/notifier"}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    env = {e["name"]: e for e in ctr["env"]}
    assert env["TMPDIR"]["value"] == "/tmp"  # the heartbeat `notifier healthcheck` reads
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True
    # Everything else as the base: probes, grace, resources, security.
    base = k8s("deployment.yaml")["spec"]["template"]["spec"]
    (base_ctr,) = base["containers"]
    for key in ("livenessProbe", "readinessProbe", "resources", "securityContext", "args"):
        assert ctr[key] == base_ctr[key], key
    for key in ("securityContext", "terminationGracePeriodSeconds"):
        assert pod[key] == base[key], key


def test_overlay_takes_the_database_url_and_password_from_a_secret() -> None:
    (ctr,) = overlay_deployment()["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in ctr["env"]}
    secret = yaml.safe_load((REPLICAS / "secret.example.yaml").read_text())
    kust = yaml.safe_load((REPLICAS / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kust["resources"]  # never a real secret in git
    refs = {}
    for var in ("NOTIFIER_DB_URL", DB_PASSWORD_VAR):
        assert "value" not in env[var], var
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"], var
        refs[var] = ref["key"]
    assert set(refs.values()) == set(secret["stringData"])
    assert "@" in secret["stringData"][refs["NOTIFIER_DB_URL"]]
    assert ":" not in secret["stringData"][refs["NOTIFIER_DB_URL"]].split("//")[1].split("@")[0]
    assert ctr["envFrom"] == [{"secretRef": {"name": "notifier-secrets"}}]  # the base's
    # The ConfigMap is deploy/config.postgres.yaml, which reads both variables.
    config_map = overlay()[("ConfigMap", "notifier-config")]
    text = config_map["data"]["config.yaml"]
    assert text == (DEPLOY / "config.postgres.yaml").read_text(), (
        "deploy/kubernetes-replicas/config.yaml differs from deploy/config.postgres.yaml: cp "
        "deploy/config.postgres.yaml deploy/kubernetes-replicas/config.yaml"
    )
    url = secret["stringData"][refs["NOTIFIER_DB_URL"]]
    assert refs[DB_PASSWORD_VAR] in secret["stringData"]  # a placeholder: refused when loaded
    env_vars = {**VALID_SECRETS, "NOTIFIER_DB_URL": url, DB_PASSWORD_VAR: "Q7x9Vw2Lk3" * 3}
    settings = parse_config(text, source="configmap", env=env_vars, base_dir=REPLICAS)
    assert settings.state.url == url


@pytest.mark.parametrize("version", ["1.30.0", "latest"])
def test_overlay_renders_valid_resources(version: str) -> None:
    """The rendered overlay against the Kubernetes schema, strictly, as `make lint-deploy`
    checks the base's files (a patch alone is not a whole resource)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    wanted = kubernetes_validate.latest_version() if version == "latest" else version
    resources = overlay()
    assert {kind for kind, _ in resources} == {
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
    }
    for resource in resources.values():
        kubernetes_validate.validate(resource, wanted, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("folder", [K8S, REPLICAS], ids=["base", "replicas"])
def test_kustomize_here_matches_kubectl_kustomize(folder: Path) -> None:
    """The tests' kustomize() is what kustomize itself builds (ConfigMap hash suffix aside)."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    if built.returncode != 0 and "unknown command" in built.stderr:
        pytest.skip("this kubectl has no kustomize")
    assert built.returncode == 0, built.stderr
    theirs = list(yaml.safe_load_all(built.stdout))
    (config_map,) = [r for r in theirs if r["kind"] == "ConfigMap"]
    hashed = config_map["metadata"]["name"]
    unhashed = hashed.rsplit("-", 1)[0]
    text = built.stdout.replace(hashed, unhashed)
    key = lambda r: (r["kind"], r["metadata"]["name"])  # noqa: E731
    assert sorted(yaml.safe_load_all(text), key=key) == sorted(kustomize(folder), key=key)
