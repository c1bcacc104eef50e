"""The container and deployment files, checked against each other and the daemon.

No container engine, cluster or systemd runs in the tests, so these checks read
the Dockerfile, the Kubernetes manifests, the compose file and the systemd unit,
and load every daemon config they carry with `load_config`, the environment they
set included. tests/test_image_install.py runs the image's install steps.
"""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tailer import __version__
from tailer.config import DaemonConfig, load_config
from tailer.exitcodes import ExitCode
from tailer.service import DEFAULT_PORT, HEALTH_PATH, METRICS_PATH, READY_PATH

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
KUBERNETES = REPO / "config" / "kubernetes"
COMPOSE_FILE = REPO / "config" / "docker-compose.yml"
SYSTEMD_UNIT = REPO / "config" / "systemd" / "runtools-tail.service"

IMAGE_STATE_DIR = "/var/lib/runtools-tail"
IMAGE_CONFIG_PATH = "/etc/runtools-tail/config.yaml"
IMAGE_UID = 10001
# The write-ahead log that the journal keeps beside its pages, at most.
JOURNAL_WAL_BYTES = 16 << 20
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
DEFAULT_SHUTDOWN_GRACE_SECS = DaemonConfig.model_fields["shutdown_grace_secs"].default


# -- reading the files -------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword, its text and the build stage it is in."""

    keyword: str
    arguments: str
    stage: int
    line: int

    def exec_form(self) -> list[str]:
        """Return the JSON array of an exec-form CMD, ENTRYPOINT, VOLUME or RUN."""
        value = json.loads(self.arguments)
        assert isinstance(value, list), f"line {self.line}: expected a JSON array"
        return [str(item) for item in value]

    def pairs(self) -> dict[str, str]:
        """Return the `name=value` pairs of an ENV, ARG or LABEL instruction."""
        pairs = {}
        for word in shlex.split(self.arguments):
            name, _, value = word.partition("=")
            pairs[name] = value
        return pairs


def read_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Parse a Dockerfile into instructions, joining continuation lines.

    Comment lines are dropped, also between continuation lines, as Docker does.
    Instructions before the first FROM (global ARGs) have stage -1.
    """
    instructions = []
    stage = -1
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, arguments = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, arguments.strip(), stage, start))
    assert not pending, f"{path}: the last instruction ends with a line continuation"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(instruction.stage for instruction in instructions)
    return [instruction for instruction in instructions if instruction.stage == last]


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    matches = [instruction for instruction in instructions if instruction.keyword == keyword]
    assert len(matches) == 1, f"expected one {keyword}, found {len(matches)}"
    return matches[0]


def image_environment() -> dict[str, str]:
    """Return the ENV of the image's final stage, `$PATH` left unexpanded."""
    environment: dict[str, str] = {}
    for instruction in final_stage(read_dockerfile()):
        if instruction.keyword == "ENV":
            environment.update(instruction.pairs())
    return environment


def healthcheck_command() -> list[str]:
    """Return the exec-form command of the HEALTHCHECK, without its options."""
    healthcheck = only(read_dockerfile(), "HEALTHCHECK")
    match = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])", healthcheck.arguments)
    assert match, f"HEALTHCHECK is not `[--option=value ...] CMD [exec form]`: {healthcheck}"
    return [str(item) for item in json.loads(match.group(2))]


def load_manifest(name: str) -> dict[str, Any]:
    document = yaml.safe_load((KUBERNETES / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def read_unit(path: Path = SYSTEMD_UNIT) -> dict[str, list[tuple[str, str]]]:
    """Parse a systemd unit into its sections, each a list of (key, value) in order.

    A list rather than a map, because systemd allows a key more than once
    (Environment=, SystemCallFilter=), which configparser rejects.
    """
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path}: {line!r} comes before any section"
        assert not line.endswith("\\"), f"{path}: continuation lines are not parsed: {line!r}"
        key, separator, value = line.partition("=")
        assert separator, f"{path}: not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in section if name == key]


def unit_value(section: list[tuple[str, str]], key: str) -> str:
    values = unit_values(section, key)
    assert len(values) == 1, f"expected one {key}=, found {values}"
    return values[0]


def parse_quantity(text: str) -> int:
    """Return a Kubernetes byte quantity (`1Gi`, `512Mi`, `64Mi`) in bytes."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "": 1}
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|)", text)
    assert match, f"unsupported quantity {text!r}"
    return int(match.group(1)) * units[match.group(2)]


def parse_seconds(text: str) -> float:
    """Return a duration written as systemd and Compose do (`30`, `30s`, `1m30s`) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
    assert "".join(number + unit for number, unit in parts) == text, f"unsupported {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Expand Compose's `${NAME}` and `${NAME:-default}` from `environ`."""

    def replace(match: re.Match[str]) -> str:
        return environ.get(match.group(1)) or (match.group(3) or "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", replace, value)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every RUNTOOLS_TAIL_ variable, so only what a test sets overrides a config."""
    for name in list(os.environ):
        if name.startswith("RUNTOOLS_TAIL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def load_with_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, environ: dict[str, str], tmp_path: Path
) -> DaemonConfig:
    """Load a config text with `environ` set, as the daemon in that deployment would."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


# -- Dockerfile ----------------------------------------------------------------------


def test_dockerfile_stages_share_pinned_base() -> None:
    instructions = read_dockerfile()
    global_args = {
        name: value
        for instruction in instructions
        if instruction.keyword == "ARG" and instruction.stage == -1
        for name, value in instruction.pairs().items()
    }
    bases = [i.arguments.split()[0] for i in instructions if i.keyword == "FROM"]

    assert len(bases) == 2
    assert set(bases) == {"${PYTHON_IMAGE}"}
    # A Python 3.11 slim image of a named Debian release, optionally with a digest.
    pinned = r"python:3\.11-slim-[a-z]+(@sha256:[0-9a-f]{64})?"
    assert re.fullmatch(pinned, global_args["PYTHON_IMAGE"])


def test_package_version_read_from_module() -> None:
    assert "version" not in PROJECT
    assert "version" in PROJECT["dynamic"]
    dynamic = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert dynamic["setuptools"]["dynamic"]["version"] == {"attr": "tailer.__version__"}
    assert importlib.metadata.version("runtools-tail") == __version__


def test_dockerfile_builds_wheel_and_installs_version() -> None:
    instructions = read_dockerfile()
    build_runs = [i.arguments for i in instructions if i.stage == 0 and i.keyword == "RUN"]
    final = final_stage(instructions)
    install = " ".join(i.arguments for i in final if i.keyword == "RUN")
    args = {name: value for i in final if i.keyword == "ARG" for name, value in i.pairs().items()}

    assert any(run.startswith("pip wheel ") for run in build_runs)
    assert "--no-index" in install
    assert '"runtools-tail==${VERSION}"' in install
    assert args["VERSION"] == __version__


def test_dockerfile_runs_as_uid_10001() -> None:
    final = final_stage(read_dockerfile())
    users = [i.arguments for i in final if i.keyword == "USER"]
    install = " ".join(i.arguments for i in final if i.keyword == "RUN")

    assert users == [f"{IMAGE_UID}:{IMAGE_UID}"]
    assert f"--uid {IMAGE_UID}" in install
    assert f"--gid {IMAGE_UID}" in install
    assert f"-o {IMAGE_UID} -g {IMAGE_UID} {IMAGE_STATE_DIR}" in install


def test_dockerfile_state_volume_and_environment() -> None:
    final = final_stage(read_dockerfile())
    environment = image_environment()

    assert only(final, "VOLUME").exec_form() == [IMAGE_STATE_DIR]
    assert only(final, "WORKDIR").arguments == IMAGE_STATE_DIR
    assert environment["RUNTOOLS_TAIL_STATE_DIR"] == IMAGE_STATE_DIR
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert environment["RUNTOOLS_TAIL_SERVICE__HOST"] == "0.0.0.0"
    assert environment["PATH"].startswith("/opt/runtools-tail/bin:")


def test_dockerfile_command_signal_and_port() -> None:
    final = final_stage(read_dockerfile())

    assert only(final, "ENTRYPOINT").exec_form() == ["runtools-tail"]
    assert "runtools-tail" in PROJECT["scripts"]
    assert only(final, "CMD").exec_form() == ["run", "--config", IMAGE_CONFIG_PATH]
    assert only(final, "STOPSIGNAL").arguments == "SIGTERM"
    assert only(final, "EXPOSE").arguments == str(DEFAULT_PORT)


def test_dockerfile_healthcheck_targets_health_path() -> None:
    command = healthcheck_command()

    assert command[:2] == ["python", "-c"]
    assert "'http://127.0.0.1:'" in command[2]
    assert f"'{DEFAULT_PORT}'" in command[2]
    assert f"'{HEALTH_PATH}'" in command[2]


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == HEALTH_PATH else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(10)
    server.server_close()


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    command = healthcheck_command()
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "RUNTOOLS_TAIL_SERVICE__PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_healthcheck_passes_on_200(health_server: http.server.HTTPServer) -> None:
    result = run_healthcheck(health_server.server_address[1])

    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_on_503(
    health_server: http.server.HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_HealthHandler, "status", 503)

    result = run_healthcheck(health_server.server_address[1])

    assert result.returncode == 1
    assert "HTTP Error 503" in result.stderr


def test_healthcheck_fails_with_nothing_listening(health_server: http.server.HTTPServer) -> None:
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()

    result = run_healthcheck(port)

    assert result.returncode == 1
    assert "Connection refused" in result.stderr


def test_dockerfile_labels_follow_project() -> None:
    final = final_stage(read_dockerfile())
    labels = {}
    for instruction in final:
        if instruction.keyword == "LABEL":
            labels.update(instruction.pairs())

    assert labels["org.opencontainers.image.title"] == PROJECT["name"]
    assert labels["org.opencontainers.image.description"] == PROJECT["description"]
    assert labels["org.opencontainers.image.licenses"] == PROJECT["license"]
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.source"] == "${SOURCE_URL}"


def test_dockerfile_holds_no_secrets() -> None:
    instructions = read_dockerfile()
    names = [
        name
        for instruction in instructions
        if instruction.keyword in ("ENV", "ARG")
        for name in instruction.pairs()
    ]
    copied = [
        source
        for instruction in instructions
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from")
        for source in instruction.arguments.split()[:-1]
    ]

    assert [name for name in names if any(word in name.upper() for word in SECRET_WORDS)] == []
    assert sorted(copied) == ["README.md", "pyproject.toml", "tailer"]


def test_dockerignore_admits_only_copied_files() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    admitted = [pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")]

    assert patterns[0] == "*"
    assert sorted(admitted) == ["README.md", "pyproject.toml", "tailer"]
    assert "**/__pycache__" in patterns


# -- Kubernetes ----------------------------------------------------------------------


@pytest.fixture
def deployment() -> dict[str, Any]:
    return load_manifest("deployment.yaml")


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def tailer_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [
        container
        for container in pod_spec(deployment)["containers"]
        if "runtools-tail" in container["image"]
    ]
    assert len(containers) == 1
    return containers[0]


def pod_volume(deployment: dict[str, Any], mount_path: str) -> dict[str, Any]:
    """Return the pod volume that the tailer mounts at `mount_path`."""
    mounts = tailer_container(deployment)["volumeMounts"]
    names = [mount["name"] for mount in mounts if mount["mountPath"] == mount_path]
    assert len(names) == 1, f"expected one volume mounted at {mount_path}"
    volumes: list[dict[str, Any]] = [
        volume for volume in pod_spec(deployment)["volumes"] if volume["name"] == names[0]
    ]
    assert len(volumes) == 1
    return volumes[0]


def probe_port(container: dict[str, Any], probe: str) -> int:
    port = container[probe]["httpGet"]["port"]
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    assert len(named) == 1, f"{probe}: no container port named {port!r}"
    return int(named[0])


def container_environment(container: dict[str, Any]) -> dict[str, str]:
    """Return the container's plain `env` values, on top of the image's ENV."""
    environment = {
        name: value
        for name, value in image_environment().items()
        if name.startswith("RUNTOOLS_TAIL_")
    }
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = str(variable["value"])
    return environment


@pytest.fixture
def sidecar_config(
    deployment: dict[str, Any], clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> DaemonConfig:
    """The ConfigMap's config as the sidecar loads it, with the image's and pod's environment."""
    text = load_manifest("configmap.yaml")["data"]["config.yaml"]
    environ = container_environment(tailer_container(deployment))
    return load_with_environment(clean_environment, text, environ, tmp_path)


def test_probes_use_service_paths_and_port(deployment: dict[str, Any]) -> None:
    container = tailer_container(deployment)

    assert container["livenessProbe"]["httpGet"]["path"] == HEALTH_PATH
    assert container["readinessProbe"]["httpGet"]["path"] == READY_PATH
    assert probe_port(container, "livenessProbe") == DEFAULT_PORT
    assert probe_port(container, "readinessProbe") == DEFAULT_PORT


def test_prometheus_annotations_point_at_metrics(deployment: dict[str, Any]) -> None:
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]

    assert annotations["prometheus.io/port"] == str(DEFAULT_PORT)
    assert annotations["prometheus.io/path"] == METRICS_PATH


def test_sidecar_runs_non_root_read_only(deployment: dict[str, Any]) -> None:
    context = tailer_container(deployment)["securityContext"]

    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == IMAGE_UID
    assert context["runAsGroup"] == IMAGE_UID
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod_spec(deployment)["securityContext"]["fsGroup"] == IMAGE_UID


def test_sidecar_writes_only_state_and_tmp(deployment: dict[str, Any]) -> None:
    mounts = tailer_container(deployment)["volumeMounts"]
    writable = sorted(m["mountPath"] for m in mounts if not m.get("readOnly", False))

    assert writable == ["/tmp", IMAGE_STATE_DIR]
    assert "emptyDir" in pod_volume(deployment, "/tmp")


def test_sidecar_has_resource_bounds(deployment: dict[str, Any]) -> None:
    resources = tailer_container(deployment)["resources"]

    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    assert parse_quantity(resources["requests"]["memory"]) <= parse_quantity(
        resources["limits"]["memory"]
    )


def test_sidecar_args_match_image_command(deployment: dict[str, Any]) -> None:
    args = tailer_container(deployment)["args"]
    image_command = only(final_stage(read_dockerfile()), "CMD").exec_form()

    assert args[: len(image_command)] == image_command
    assert "command" not in tailer_container(deployment)


def test_single_replica_recreated(deployment: dict[str, Any]) -> None:
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_config_map_config_loads(sidecar_config: DaemonConfig) -> None:
    assert sidecar_config.state_dir == Path(IMAGE_STATE_DIR)
    assert sidecar_config.service.enabled is True
    assert sidecar_config.service.host == "0.0.0.0"
    assert sidecar_config.service.port == DEFAULT_PORT


def test_config_map_mounted_at_image_config_path(deployment: dict[str, Any]) -> None:
    config_map = load_manifest("configmap.yaml")
    volume = pod_volume(deployment, str(Path(IMAGE_CONFIG_PATH).parent))
    items = volume["configMap"]["items"]

    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert items == [{"key": "config.yaml", "path": Path(IMAGE_CONFIG_PATH).name}]
    assert "config.yaml" in config_map["data"]


def test_secret_mounted_as_token_file(
    deployment: dict[str, Any], sidecar_config: DaemonConfig
) -> None:
    secret = load_manifest("secret.yaml")
    token_file = sidecar_config.sources["main"].token_file
    assert token_file is not None
    volume = pod_volume(deployment, str(token_file.parent))["secret"]

    assert volume["secretName"] == secret["metadata"]["name"]
    assert volume["items"] == [{"key": token_file.name, "path": token_file.name}]
    assert volume["defaultMode"] == 0o440
    assert token_file.name in secret["stringData"]


def test_secret_holds_placeholder_only() -> None:
    values = load_manifest("secret.yaml")["stringData"].values()

    assert all(value.startswith("REPLACE_WITH_") for value in values)


def test_no_key_in_pod_environment(deployment: dict[str, Any]) -> None:
    for container in pod_spec(deployment)["containers"]:
        for variable in container.get("env", []):
            if any(word in variable["name"].upper() for word in SECRET_WORDS):
                assert "value" not in variable, f"{variable['name']} holds a literal value"


def test_grace_period_exceeds_shutdown_grace(
    deployment: dict[str, Any], sidecar_config: DaemonConfig
) -> None:
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]

    assert grace > sidecar_config.shutdown_grace_secs


def test_state_volume_claim_fits_journal(
    deployment: dict[str, Any], sidecar_config: DaemonConfig
) -> None:
    claim = load_manifest("persistentvolumeclaim.yaml")
    volume = pod_volume(deployment, IMAGE_STATE_DIR)
    size = parse_quantity(claim["spec"]["resources"]["requests"]["storage"])

    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert size > sidecar_config.max_journal_bytes + JOURNAL_WAL_BYTES


def test_dead_letters_stay_in_state_volume(sidecar_config: DaemonConfig) -> None:
    for name, sink in sidecar_config.sinks.items():
        if sink.dead_letter_path is not None:
            assert sink.dead_letter_path.is_relative_to(IMAGE_STATE_DIR), name


# -- Docker Compose ------------------------------------------------------------------


@pytest.fixture
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """Return a service's environment as `docker compose` sets it with nothing exported."""
    return {name: interpolate(str(value), {}) for name, value in service["environment"].items()}


@pytest.fixture
def compose_config(
    compose: dict[str, Any], clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> DaemonConfig:
    """The tailer's inline config as it loads in the container."""
    tailer = compose["services"]["tailer"]
    [mounted] = tailer["configs"]
    text = compose["configs"][mounted["source"]]["content"]
    environ = {
        **{k: v for k, v in image_environment().items() if k.startswith("RUNTOOLS_TAIL_")},
        **{k: v for k, v in compose_environment(tailer).items() if k.startswith("RUNTOOLS_TAIL_")},
    }
    return load_with_environment(clean_environment, text, environ, tmp_path)


def test_compose_runs_tailer_and_simulator_from_one_image(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert set(services) == {"simulator", "tailer"}
    assert services["simulator"]["image"] == services["tailer"]["image"]
    assert services["simulator"]["build"] == services["tailer"]["build"]
    assert services["tailer"]["build"]["context"] == ".."
    assert services["tailer"]["depends_on"]["simulator"]["condition"] == "service_healthy"


def test_compose_simulator_listens_on_8080(compose: dict[str, Any]) -> None:
    command = compose["services"]["simulator"]["command"]

    assert command[0] == "simulate"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8080"
    assert "8080" in " ".join(compose["services"]["simulator"]["healthcheck"]["test"])


def test_compose_tailer_environment(compose: dict[str, Any]) -> None:
    environment = compose["services"]["tailer"]["environment"]

    assert environment["RUNTOOLS_TAIL_SOURCES__MAIN__API_URL"] == "http://simulator:8080"
    assert environment["RUNTOOLS_TAIL_SOURCES__MAIN__ALLOW_INSECURE_HTTP"] == "true"
    assert environment["RUNTOOLS_API_KEY"].startswith("${RUNTOOLS_API_KEY")


def test_compose_config_loads_with_environment(compose_config: DaemonConfig) -> None:
    source = compose_config.sources["main"]

    assert source.api_url == "http://simulator:8080"
    assert source.allow_insecure_http is True
    assert source.token_env == "RUNTOOLS_API_KEY"
    assert compose_config.state_dir == Path(IMAGE_STATE_DIR)
    assert compose_config.service.host == "0.0.0.0"


def test_compose_tailer_read_only_with_state_volume(
    compose: dict[str, Any], compose_config: DaemonConfig
) -> None:
    tailer = compose["services"]["tailer"]
    sink_paths = [
        Path(str(sink.sink_options()["path"]))
        for sink in compose_config.sinks.values()
        if sink.type == "file"
    ]

    assert tailer["read_only"] is True
    assert tailer["tmpfs"] == ["/tmp"]
    assert tailer["cap_drop"] == ["ALL"]
    assert tailer["volumes"] == [f"tailer-state:{IMAGE_STATE_DIR}"]
    assert tailer["configs"][0]["target"] == IMAGE_CONFIG_PATH
    assert all(path.is_relative_to(IMAGE_STATE_DIR) for path in sink_paths)


def test_compose_stop_grace_exceeds_shutdown_grace(
    compose: dict[str, Any], compose_config: DaemonConfig
) -> None:
    grace = parse_seconds(compose["services"]["tailer"]["stop_grace_period"])

    assert grace > compose_config.shutdown_grace_secs


def test_compose_publishes_service_on_loopback(compose: dict[str, Any]) -> None:
    assert compose["services"]["tailer"]["ports"] == [f"127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}"]


# -- systemd ---------------------------------------------------------------------------


@pytest.fixture
def service() -> list[tuple[str, str]]:
    return read_unit()["Service"]


def unit_environment(service: list[tuple[str, str]]) -> dict[str, str]:
    """Return the unit's Environment= values with %S and %d expanded as for a system service."""
    specifiers = {"%S": "/var/lib", "%d": "/run/credentials/runtools-tail.service"}
    environment = {}
    for assignment in unit_values(service, "Environment"):
        name, _, value = assignment.partition("=")
        for specifier, expanded in specifiers.items():
            value = value.replace(specifier, expanded)
        environment[name] = value
    return environment


def test_unit_starts_daemon(service: list[tuple[str, str]]) -> None:
    command = shlex.split(unit_value(service, "ExecStart"))

    assert Path(command[0]).name == "runtools-tail"
    assert command[1:] == ["run", "--config", IMAGE_CONFIG_PATH]
    assert unit_value(service, "Type") == "exec"


def test_unit_stops_and_reloads_with_signals(service: list[tuple[str, str]]) -> None:
    assert unit_value(service, "KillSignal") == "SIGTERM"
    assert parse_seconds(unit_value(service, "TimeoutStopSec")) > DEFAULT_SHUTDOWN_GRACE_SECS
    assert unit_value(service, "ExecReload") == "/bin/kill -HUP $MAINPID"


def test_unit_restarts_unless_config_invalid(service: list[tuple[str, str]]) -> None:
    assert unit_value(service, "Restart") == "on-failure"
    assert unit_value(service, "RestartPreventExitStatus") == str(int(ExitCode.USAGE_ERROR))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("UMask", "0077"),
        ("StateDirectory", "runtools-tail"),
    ],
)
def test_unit_hardening(service: list[tuple[str, str]], key: str, expected: str) -> None:
    assert unit_value(service, key) == expected


def test_unit_environment_sets_state_dir_and_token_file(
    service: list[tuple[str, str]], clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credential, _, credential_path = unit_value(service, "LoadCredential").partition(":")
    environment = unit_environment(service)
    text = (REPO / "config" / "file-archive.yaml").read_text(encoding="utf-8")

    config = load_with_environment(clean_environment, text, environment, tmp_path)

    assert credential_path == "/etc/runtools-tail/api-key"
    assert config.state_dir == Path("/var/lib") / unit_value(service, "StateDirectory")
    assert config.sources["main"].token_file == Path(
        "/run/credentials/runtools-tail.service", credential
    )
    assert list(config.sources) == ["main"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify rejects an ExecStart that does not exist, so point it at this venv's command.
    installed = Path(sys.executable).parent / "runtools-tail"
    unit = tmp_path / SYSTEMD_UNIT.name
    unit.write_text(
        SYSTEMD_UNIT.read_text(encoding="utf-8").replace(
            "/opt/runtools-tail/bin/runtools-tail", str(installed)
        ),
        encoding="utf-8",
    )

    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
