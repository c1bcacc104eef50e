"""The image's install steps, reproduced without a container engine.

What the Dockerfile does, and how this test reproduces it:

1. Build stage: the files that the build stage copies (and .dockerignore
   admits) are copied to an empty directory, and `pip wheel --no-deps
   --no-build-isolation` builds the project's wheel there.
2. Runtime stage: a fresh venv gets that wheel, installed with `--no-deps`. Its
   interpreter is the test venv's base interpreter if UID 10001 can run it, else
   the python3.X of the same minor version on /usr/local/bin:/usr/bin:/bin.
   pyenv, for one, installs under /root, which other users cannot enter.
3. User and read-only root filesystem: every command runs through `setpriv` as
   UID and GID 10001, with the image's environment and HOME unset. That user
   owns only the state directory, and the current directory, the venv and the
   repository belong to root, so they are read-only to it, as the image's root
   filesystem is to the container.

NOTE: dependency resolution is not part of this test. The tests reach no package
index, so the package's runtime dependencies, and theirs, are copied from the
test venv's site-packages into a directory that the fresh venv reads through a
.pth file: the versions are the test venv's, not those an image build would
resolve. Only the project's own wheel is installed fresh. The copy, not the
test venv, is what UID 10001 reads, so the test venv may lie in a directory
private to root, such as a clone under /root.

The test needs root (to switch to UID 10001) and `setpriv` from util-linux.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from localservers import KEY, SimulatorProcess
from test_deployment import (
    IMAGE_UID,
    healthcheck_command,
    image_environment,
    load_manifest,
    read_dockerfile,
)

from tailer import __version__

REPO = Path(__file__).resolve().parent.parent
# Directories where every user may create files, so UID 10001 could write there
# besides the state directory.
WORLD_WRITABLE_DIRS = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path("/run/lock")]
BACKLOG = 200
ROOT_PREFIX = "runtools-tail-image-"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or os.geteuid() != 0,
        reason="switching to UID 10001 needs root on Linux",
    ),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv is not installed"),
]


def as_image_user(*args: str) -> list[str]:
    """Return a command line that runs `args` as UID and GID 10001, without privileges."""
    return [
        "setpriv",
        f"--reuid={IMAGE_UID}",
        f"--regid={IMAGE_UID}",
        "--clear-groups",
        "--no-new-privs",
        "--",
        *args,
    ]


@dataclass
class InstalledImage:
    """The wheel installed in a fresh venv, and how to run it as the image's user."""

    root: Path
    venv: Path
    state_dir: Path
    workdir: Path
    environment: dict[str, str]

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run a command as UID 10001 in the read-only working directory."""
        return subprocess.run(
            as_image_user(*args),
            cwd=self.workdir,
            env={**self.environment, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self, *args: str, log: Path, **extra_env: str) -> subprocess.Popen[bytes]:
        """Start a command as UID 10001. `setpriv` execs it, so the PID is the command's."""
        with log.open("wb") as stderr:
            return subprocess.Popen(
                as_image_user(*args),
                cwd=self.workdir,
                env={**self.environment, **extra_env},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )


def copy_build_context(destination: Path) -> None:
    """Copy what the build stage's COPY instructions take from the context."""
    build_stage = [i for i in read_dockerfile() if i.stage == 0 and i.keyword == "COPY"]
    for instruction in build_stage:
        *sources, target = instruction.arguments.split()
        for source in sources:
            assert target in ("./", f"./{source}"), f"unexpected COPY target {target!r}"
            origin = REPO / source
            if origin.is_dir():
                # .dockerignore keeps bytecode caches out of the context.
                ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]")
                shutil.copytree(origin, destination / source, ignore=ignore)
            else:
                shutil.copy2(origin, destination / source)


def run_as_image_user(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        as_image_user(*args),
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def find_interpreter() -> Path:
    """Return a Python of this minor version whose files UID 10001 can read and run."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [getattr(sys, "_base_executable", sys.executable)]
    found = shutil.which(f"python{version}", path="/usr/local/bin:/usr/bin:/bin")
    if found:
        candidates.append(found)
    check = (
        "import os, sys; "
        "runnable = os.access(os.path.realpath(sys.executable), os.X_OK); "
        f"sys.exit(0 if runnable and sys.version.startswith('{version}.') else 1)"
    )
    for candidate in candidates:
        if run_as_image_user(candidate, "-c", check).returncode == 0:
            return Path(candidate)
    pytest.fail(f"UID {IMAGE_UID} can run none of the Python {version} interpreters {candidates}")


def build_and_install(root: Path) -> Path:
    """Build the project's wheel from a copy of the build context and install it in a venv."""
    context = root / "context"
    wheels = root / "wheels"
    venv = root / "venv"
    context.mkdir()
    copy_build_context(context)
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    pip = [sys.executable, "-m", "pip"]
    build = ["wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels)]
    subprocess.run(
        [*pip, *build, str(context)],
        env=offline,
        check=True,
        timeout=120,
    )
    [wheel] = wheels.glob("runtools_tail-*.whl")

    interpreter = find_interpreter()
    subprocess.run([str(interpreter), "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [*pip, "--python", python, "install", "--quiet", "--no-deps", str(wheel)],
        env=offline,
        check=True,
        timeout=120,
    )

    # The dependencies come from the test venv (see the module docstring). A .pth
    # line only extends sys.path, so .pth files among the copies are not processed.
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    site_packages = Path(purelib.stdout.strip())
    dependencies = root / "dependencies"
    copy_runtime_dependencies(dependencies)
    (site_packages / "test-venv-dependencies.pth").write_text(f"{dependencies}\n", encoding="utf-8")
    return venv


def copy_runtime_dependencies(destination: Path) -> None:
    """Copy the installed files of the package's runtime dependencies, and theirs."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pending = ["runtools-tail"]
    seen: set[str] = set()
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        distribution = metadata.distribution(name)
        for line in distribution.requires or []:
            requirement = Requirement(line)
            # With no extra named, the markers leave out the project's dev tools and
            # what only other Python versions need.
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
        if name == "runtools-tail":
            continue
        for file in distribution.files or []:
            if file.parts[0] == "..":
                continue  # a console script outside site-packages
            target = destination / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(file.locate()), target)


def image_user_environment(venv: Path, state_dir: Path) -> dict[str, str]:
    """Return the image's ENV with paths of this machine, HOME left unset."""
    environment = image_environment()
    environment["PATH"] = environment["PATH"].replace("/opt/runtools-tail/bin", str(venv / "bin"))
    environment["PATH"] = environment["PATH"].replace("$PATH", "/usr/bin:/bin")
    environment["RUNTOOLS_TAIL_STATE_DIR"] = str(state_dir)
    # The image listens on every interface, but the tests use only 127.0.0.1.
    environment["RUNTOOLS_TAIL_SERVICE__HOST"] = "127.0.0.1"
    return environment


@pytest.fixture(scope="module")
def image() -> Iterator[InstalledImage]:
    # Not tmp_path: pytest's base directory is private to root, and UID 10001
    # must be able to reach the venv.
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
    try:
        root.chmod(0o755)
        venv = build_and_install(root)
        state_dir = root / "state"
        state_dir.mkdir(mode=0o700)
        os.chown(state_dir, IMAGE_UID, IMAGE_UID)
        workdir = root / "workdir"
        workdir.mkdir(mode=0o755)
        installed = InstalledImage(
            root, venv, state_dir, workdir, image_user_environment(venv, state_dir)
        )

        probe = installed.run("python", "-c", "import aiohttp, pydantic, yaml, tailer")
        if probe.returncode != 0:
            pytest.fail(
                f"UID {IMAGE_UID} cannot import the installed package and its dependencies "
                f"from {root}:\n{probe.stderr}"
            )
        yield installed
    finally:
        shutil.rmtree(root, ignore_errors=True)


def files_owned_by(uid: int) -> set[Path]:
    owned = set()
    for directory in WORLD_WRITABLE_DIRS:
        for parent, dirnames, filenames in os.walk(directory, onerror=lambda error: None):
            for name in dirnames + filenames:
                path = Path(parent, name)
                try:
                    if path.lstat().st_uid == uid:
                        owned.add(path)
                except FileNotFoundError:
                    continue
    return owned


def outside_state_dirs(paths: set[Path]) -> set[Path]:
    """Drop the files in the state directory of this run, or of another run of these tests
    on the same machine, which writes as the same UID."""
    state_dirs = list(Path(tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*/state"))
    return {path for path in paths if not any(path.is_relative_to(d) for d in state_dirs)}


def log_events(log: Path) -> list[dict[str, Any]]:
    events = []
    for line in log.read_bytes().splitlines():
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return events


def wait_for(condition: Callable[[], bool], timeout: float, description: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {description}")
        time.sleep(0.1)


def test_user_cannot_write_outside_state_dir(image: InstalledImage) -> None:
    writes = {
        "working directory": image.workdir / "probe",
        "venv": image.venv / "probe",
        "repository": REPO / "probe",
        "state directory": image.state_dir / "probe",
    }
    allowed = {}
    for place, path in writes.items():
        result = image.run("python", "-c", f"open({str(path)!r}, 'w').close()")
        allowed[place] = result.returncode == 0

    assert allowed == {
        "working directory": False,
        "venv": False,
        "repository": False,
        "state directory": True,
    }
    (image.state_dir / "probe").unlink()


def test_version_matches_project(image: InstalledImage) -> None:
    result = image.run("runtools-tail", "--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"runtools-tail {__version__}"


def test_package_imported_from_wheel(image: InstalledImage) -> None:
    code = (
        "import importlib.metadata, tailer; "
        "print(tailer.__file__); "
        "print(importlib.metadata.distribution('runtools-tail').locate_file(''))"
    )
    result = image.run("python", "-c", code)
    assert result.returncode == 0, result.stderr
    module_file, distribution_root = result.stdout.split()

    assert Path(module_file).is_relative_to(image.venv)
    assert Path(distribution_root).is_relative_to(image.venv)


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "config").glob("*.yaml")),
    ids=lambda path: path.name,
)
def test_check_config_accepts_example(image: InstalledImage, path: Path) -> None:
    # A copy, because UID 10001 may not be able to enter the repository.
    example = image.root / path.name
    shutil.copyfile(path, example)
    example.chmod(0o644)

    result = image.run("runtools-tail", "check-config", str(example))

    assert result.returncode == 0, result.stderr
    assert f"{example}: valid" in result.stdout


def test_check_config_accepts_config_map(image: InstalledImage) -> None:
    config = image.root / "configmap-config.yaml"
    config.write_text(load_manifest("configmap.yaml")["data"]["config.yaml"], encoding="utf-8")

    result = image.run("runtools-tail", "check-config", str(config))

    assert result.returncode == 0, result.stderr
    assert "1 sink(s) (app (webhook))" in result.stdout


@dataclass
class DaemonRun:
    """What one run of the daemon left: its exit code, log, delivered events and files."""

    returncode: int
    log: list[dict[str, Any]]
    delivered: list[dict[str, Any]]
    expected_ids: set[str]
    healthcheck: subprocess.CompletedProcess[str]
    new_files: set[Path]


@pytest.fixture(scope="module")
def daemon_run(image: InstalledImage) -> DaemonRun:
    """Run the daemon as UID 10001 against the simulator, then stop it with SIGTERM."""
    simulator = SimulatorProcess(
        "--backlog", str(BACKLOG), "--backlog-span", "30m", "--rate", "5", "--seed", "11"
    )
    archive = image.state_dir / "activity.ndjson"
    config = image.root / "daemon.yaml"
    config.write_text(
        "shutdown_grace_secs: 5\n"
        "service: {port: 0}\n"
        f"sources:\n  main: {{api_url: '{simulator.url}', since: 1h, poll_interval_secs: 0.2}}\n"
        f"sinks:\n  archive:\n    type: file\n    path: {archive}\n"
        "    batch: {max_wait_secs: 0.2}\n",
        encoding="utf-8",
    )
    log = image.root / "daemon.log"
    before = files_owned_by(IMAGE_UID)
    daemon = image.start(
        "runtools-tail",
        "run",
        "--config",
        str(config),
        "--log-format",
        "json",
        log=log,
        RUNTOOLS_API_KEY=KEY,
    )
    try:
        wait_for(
            lambda: archive.exists() and len(archive.read_bytes().splitlines()) >= BACKLOG,
            30,
            f"{BACKLOG} events in the file sink",
        )
        # The service listener binds an ephemeral port (`port: 0`) and logs it.
        [started] = [event for event in log_events(log) if event["event"] == "service.started"]
        port = str(started["port"])
        healthcheck = image.run(*healthcheck_command(), RUNTOOLS_TAIL_SERVICE__PORT=port)

        daemon.send_signal(signal.SIGTERM)
        returncode = daemon.wait(30)
        expected = {str(event["id"]) for event in simulator.control("GET", "/_control/events")}
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        simulator.stop()

    return DaemonRun(
        returncode=returncode,
        log=log_events(log),
        delivered=[orjson.loads(line) for line in archive.read_bytes().splitlines()],
        expected_ids=expected,
        healthcheck=healthcheck,
        new_files=outside_state_dirs(files_owned_by(IMAGE_UID) - before),
    )


def test_daemon_exits_zero_on_sigterm(daemon_run: DaemonRun) -> None:
    events = [event["event"] for event in daemon_run.log]

    assert daemon_run.returncode == 0
    assert "daemon.started" in events
    assert events[-1] == "daemon.stopped"


def test_daemon_delivers_events_once(daemon_run: DaemonRun) -> None:
    ids = [str(event["id"]) for event in daemon_run.delivered]

    assert len(ids) >= BACKLOG
    assert len(set(ids)) == len(ids)
    assert set(ids) <= daemon_run.expected_ids


def test_daemon_writes_only_state_dir(daemon_run: DaemonRun) -> None:
    assert daemon_run.new_files == set()


def test_healthcheck_passes_against_daemon(daemon_run: DaemonRun) -> None:
    assert daemon_run.healthcheck.returncode == 0, daemon_run.healthcheck.stderr
