"""docker-compose.yml, the Dockerfile and the README's configuration table, checked without a
Docker engine: the YAML is parsed and its services, health checks, volumes and environment
asserted; ``docker-compose config -q`` validates it when the binary is installed (Debian's
``docker-compose`` package); every ``RECOMMENDER_*`` variable used must be a real setting."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from recommender.service.settings import Settings

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
SETTING_VARS = {f"RECOMMENDER_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE form
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _command(service: dict) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def test_services_and_named_volumes(compose):
    services = compose["services"]
    assert {"db", "api", "worker"} <= set(services)
    assert {"pgdata", "models"} <= set(compose["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    # The worker writes artifacts the API serves: both mount the same volume.
    for name in ("api", "worker"):
        assert "models:/data/models" in services[name]["volumes"]
        assert _env(services[name])["RECOMMENDER_MODEL_DIR"] == "/data/models"


def test_every_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"service {name!r} has no healthcheck"
    assert "pg_isready" in str(compose["services"]["db"]["healthcheck"]["test"])
    assert "/readyz" in str(compose["services"]["api"]["healthcheck"]["test"])


def test_api_migrates_then_serves_after_a_healthy_database(compose):
    api = compose["services"]["api"]
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    command = _command(api)
    upgrade, serve = command.index("recommender db upgrade"), command.index("recommender serve")
    assert upgrade < serve
    assert "--host 0.0.0.0" in command
    assert any(str(port).endswith(":8000") for port in api["ports"])


def test_worker_runs_the_job_loop_and_the_api_does_not(compose):
    services = compose["services"]
    assert _command(services["worker"]).startswith("recommender worker")
    assert services["worker"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert _env(services["api"])["RECOMMENDER_RUN_WORKER"] == "false"


def test_environment_uses_real_settings_and_requires_the_admin_token(compose):
    for name in ("api", "worker"):
        env = _env(compose["services"][name])
        unknown = {key for key in env if key.startswith("RECOMMENDER_")} - SETTING_VARS
        assert not unknown, f"{name}: not settings in recommender/service/settings.py: {unknown}"
        assert env["RECOMMENDER_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@db:5432/" in env["RECOMMENDER_DATABASE_URL"]
        # Required: compose refuses to start without it instead of running an open admin API.
        assert re.fullmatch(r"\$\{RECOMMENDER_ADMIN_TOKEN:\?.+\}", env["RECOMMENDER_ADMIN_TOKEN"])


def test_dockerfile_installs_cpu_torch_by_default_with_a_cuda_switch():
    text = DOCKERFILE.read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert "ARG TORCH_VERSION=2.13.0" in text
    assert 'pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in text
    assert re.search(r"^ARG BASE_IMAGE=", text, re.MULTILINE)
    # The wheel (migrations inside the package), dependencies from the lock file, no checkout.
    assert "pip install -r requirements.lock" in text
    assert "pip install --no-deps /tmp/dist/recommender-*.whl" in text
    assert " -e " not in text and "COPY migrations" not in text
    assert (REPO / "requirements.lock").is_file()


def test_readme_configuration_table_matches_the_settings():
    readme = (REPO / "README.md").read_text()
    missing = sorted(var for var in SETTING_VARS if f"`{var}`" not in readme)
    assert not missing, f"README.md does not document: {missing}"
    table = set(re.findall(r"^\| `(RECOMMENDER_[A-Z0-9_]+)` \|", readme, re.MULTILINE))
    assert table, "README.md has no configuration table"
    assert not table - SETTING_VARS, f"README.md documents unknown settings: {table - SETTING_VARS}"


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose is not installed (apt-get install docker-compose)")
def test_docker_compose_config_validates():
    env = {**os.environ, "RECOMMENDER_ADMIN_TOKEN": "test-token"}
    ok = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    env.pop("RECOMMENDER_ADMIN_TOKEN")
    missing = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], env=env,
                             capture_output=True, text=True, timeout=60, cwd=REPO.parent)
    assert missing.returncode != 0
    assert "RECOMMENDER_ADMIN_TOKEN" in missing.stderr
