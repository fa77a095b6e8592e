"""docker/: Docker cannot run here, so the compose file's structure is checked instead, and every service's
command is checked to exist in the project (a Django command, a Celery sub-command of our app on one of its
queues, gunicorn with our config), and the example environment documents every setting the code reads."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
SERVICES = {"postgres", "redis", "web", "worker-default", "worker-gpu", "beat", "flower"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_the_compose_file_has_every_service_with_a_health_check(compose):
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name


def test_state_lives_in_named_volumes(compose):
    declared = set(compose["volumes"])
    assert {"pgdata", "redisdata", "media", "artifacts"} <= declared
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in declared, f"{name} mounts {source}, which is not a named volume"


def test_app_services_wait_for_healthy_postgres_and_redis_and_read_the_env_file(compose):
    for name in SERVICES - {"postgres", "redis"}:
        service = compose["services"][name]
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name
        assert service["env_file"] == [".env"], name


def test_the_gpu_worker_uses_the_cuda_image_and_asks_for_a_gpu(compose):
    gpu = compose["services"]["worker-gpu"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert (DOCKER / "Dockerfile.gpu").read_text().startswith("# GPU") and "FROM nvidia/cuda:" in (
        DOCKER / "Dockerfile.gpu"
    ).read_text()
    instructions = [line for line in (DOCKER / "Dockerfile").read_text().splitlines() if not line.startswith("#")]
    assert any("download.pytorch.org/whl/cpu torch==" in line for line in instructions)
    assert not any("cuda" in line.lower() for line in instructions)


def _argv(command) -> list[str]:
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        return command[2].replace("exec ", "").split()
    return list(command)


def _check_command(argv: list[str]) -> None:
    from celery.bin.celery import celery as celery_cli
    from django.core.management import get_commands

    from config.celery import app

    for part in " ".join(argv).split("&&"):
        words = part.split()
        if words[:2] == ["python", "manage.py"]:
            assert words[2] in get_commands(), f"no manage.py command {words[2]!r}"
        elif words[0] == "gunicorn":
            assert importlib.util.find_spec("gunicorn"), "gunicorn is not installed"
            config = words[words.index("-c") + 1]
            assert (ROOT / config).is_file(), config
            module = words[-1].replace(".", "/") + ".py"
            assert (ROOT / module).is_file(), module
        elif words[0] == "celery":
            assert words[1:3] == ["-A", "config"]
            sub = words[3]
            if sub == "flower":
                import flower  # noqa: F401  (pinned in requirements.txt)
            else:
                assert sub in celery_cli.commands, f"no celery sub-command {sub!r}"
            if "-Q" in words:
                queues = set(words[words.index("-Q") + 1].split(","))
                assert queues <= {q.name for q in app.conf.task_queues}, queues
        elif words[0] in ("redis-server",):
            continue
        else:
            raise AssertionError(f"unknown command {words}")


@pytest.mark.parametrize("service", sorted(SERVICES - {"postgres"}))
def test_every_service_command_exists_in_the_project(compose, service):
    _check_command(_argv(compose["services"][service]["command"]))


def test_the_images_default_commands_exist_too():
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        text = (DOCKER / dockerfile).read_text()
        cmd = re.search(r"^CMD (\[.*\])$", text, re.M).group(1)
        _check_command(yaml.safe_load(cmd))


def test_the_example_environment_documents_every_setting_the_code_reads():
    sources = [ROOT / "config" / "settings.py", ROOT / "config" / "gunicorn.py", ROOT / "training" / "rounds.py"]
    read = set()
    for source in sources:
        text = source.read_text()
        read |= set(re.findall(r'env\.\w+\("([A-Z0-9_]+)"', text))
        read |= set(re.findall(r'os\.environ(?:\.get)?\[?\(?"([A-Z0-9_]+)"', text))
    read -= {"DJANGO_SETTINGS_MODULE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"}
    documented = set(re.findall(r"^#? ?([A-Z0-9_]+)=", (DOCKER / "env.example").read_text(), re.M))
    assert read - documented == set()
    compose_vars = set(re.findall(r"\$\{?\$?([A-Z0-9_]+)", (DOCKER / "compose.yaml").read_text()))
    assert compose_vars - {"HOSTNAME"} <= documented
