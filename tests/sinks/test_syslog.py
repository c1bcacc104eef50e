"""SyslogSink against a real rsyslogd, and against plain sockets for exact bytes.

Each rsyslog test starts its own `rsyslogd -n` on 127.0.0.1 with a config file
written into tmp_path. rsyslog parses every message it receives (mmpstrucdata
parses the structured data) and writes one JSON line per message through a
template, so the tests compare the fields rsyslog read with the event sent.

Without rsyslogd, these tests fail and name scripts/install-test-tools.sh,
which installs it. Nothing here reaches another host.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import structlog
import trustme
import uvloop
from pydantic import ValidationError
from structlog.typing import EventDict

import tailer.sinks.syslog
from tailer.errors import ConfigError
from tailer.event import parse_event
from tailer.sinks.base import Batch, SinkError
from tailer.sinks.syslog import TRUNCATION_MARKER, SyslogSink, SyslogSinkConfig

INSTALL_HINT = "run scripts/install-test-tools.sh (as root) to install rsyslog"
WAIT_SECS = 10.0
HOSTNAME = "tail-host.example"
LOCAL0 = 16

EVENTS: list[dict[str, Any]] = [
    {
        "id": "act_1",
        "orgId": "org_7",
        "createdAt": "2026-05-10T12:00:00.123456Z",
        "eventType": "agent.run.failed",
        "severity": "error",
        "resourceType": "agent",
        "resourceId": "agt_1",
        "title": "Run failed",
    },
    {
        "id": "act_2",
        "orgId": "org_7",
        "createdAt": "2026-05-10T12:00:01Z",
        "eventType": "tool.call.retried",
        "severity": "warning",
        "resourceType": "tool",
        "resourceId": 'slug "quoted" ] \\ back',
        "note": "ünïcode, 日本語",
    },
    {
        "id": "act_3",
        "createdAt": "2026-05-10T12:00:02.5Z",
        "eventType": "sandbox.created",
        "severity": "success",
        "resourceType": "sandbox",
    },
    {"id": "act_4", "createdAt": "2026-05-10T12:00:03Z", "severity": "info"},
]

# The fields of EVENTS as the sink should send them, and rsyslog should read them.
EXPECTED: list[dict[str, Any]] = [
    {
        "severity": 3,
        "msgid": "agent.run.failed",
        "time": "2026-05-10T12:00:00.123456Z",
        "sd": {
            "id": "act_1",
            "type": "agent.run.failed",
            "resource": "agent/agt_1",
            "org": "org_7",
        },
    },
    {
        "severity": 4,
        "msgid": "tool.call.retried",
        "time": "2026-05-10T12:00:01.000000Z",
        "sd": {
            "id": "act_2",
            "type": "tool.call.retried",
            "resource": 'tool/slug "quoted" ] \\ back',
            "org": "org_7",
        },
    },
    {
        "severity": 5,
        "msgid": "sandbox.created",
        "time": "2026-05-10T12:00:02.500000Z",
        "sd": {"id": "act_3", "type": "sandbox.created", "resource": "sandbox/-"},
    },
    {"severity": 6, "msgid": "-", "time": "2026-05-10T12:00:03.000000Z", "sd": {"id": "act_4"}},
]


def make_config(**options: Any) -> SyslogSinkConfig:
    """Validate options as the daemon does with a sink's config section."""
    options.setdefault("host", "127.0.0.1")
    return SyslogSinkConfig.model_validate(options)


def make_batch(
    raws: list[dict[str, Any]], *, first_seq: int = 1, payloads: list[bytes] | None = None
) -> Batch:
    return Batch(
        sink="siem",
        events=[parse_event(raw) for raw in raws],
        payloads=payloads if payloads is not None else [orjson.dumps(raw) for raw in raws],
        first_seq=first_seq,
        last_seq=first_seq + len(raws) - 1,
    )


def numbered_events(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"evt_{n}", "createdAt": f"2026-05-10T13:00:{n:02d}Z", "eventType": "agent.ping"}
        for n in range(first, first + count)
    ]


def free_port(kind: socket.SocketKind) -> int:
    """Return a port on 127.0.0.1 that nothing uses at the moment."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class FastClock:
    """The system clock, whose sleeps only yield, so that rejection_wait_secs costs no time."""

    def time(self) -> float:
        return datetime.datetime.now(datetime.UTC).timestamp()

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


# --- rsyslog ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(frozen=True)
class Received:
    """One message as rsyslog parsed it."""

    pri: int
    facility: int
    severity: int
    time: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]]
    msg: str
    raw: str


# Writes each message as a JSON object. `sd` is the JSON that mmpstrucdata made of the
# structured data, written as a string because it is empty for a message without any.
_TEMPLATE_FIELDS = [
    ("pri", "pri", ""),
    ("facility", "syslogfacility", ""),
    ("severity", "syslogseverity", ""),
    ("time", "timereported", ' dateFormat="rfc3339"'),
    ("hostname", "hostname", ""),
    ("app_name", "app-name", ""),
    ("procid", "procid", ""),
    ("msgid", "msgid", ""),
    ("sd", "$!rfc5424-sd", ""),
    ("msg", "msg", ""),
    ("raw", "rawmsg", ""),
]


def _template() -> str:
    parts = []
    for index, (key, prop, options) in enumerate(_TEMPLATE_FIELDS):
        opening = "{" if index == 0 else ","
        parts.append(f'constant(value="{opening}\\"{key}\\":\\"")')
        parts.append(f'property(name="{prop}" format="json"{options})')
        parts.append('constant(value="\\"")')
    parts.append('constant(value="}\\n")')
    return 'template(name="fields" type="list") {\n  ' + "\n  ".join(parts) + "\n}"


def require_rsyslogd() -> str:
    path = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"rsyslogd is not installed; {INSTALL_HINT}", pytrace=False)
    return path


def gtls_driver_installed() -> bool:
    """Tell whether rsyslog's GnuTLS driver, from the rsyslog-gnutls package, is installed."""
    return (
        any(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so"))
        or Path("/usr/lib/rsyslog/lmnsd_gtls.so").exists()
    )


class Rsyslog:
    """One rsyslogd in the foreground, listening on 127.0.0.1, writing to `received.jsonl`."""

    def __init__(
        self,
        directory: Path,
        *,
        protocol: str,
        octet_counting: bool = True,
        tls: TlsFiles | None = None,
        auth_mode: str = "anon",
        max_message_size: str | None = "64k",
        allowed_sender: str | None = None,
    ) -> None:
        self.executable = require_rsyslogd()
        self.directory = directory
        self.protocol = protocol
        self.port = free_port(socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM)
        self.output = directory / "received.jsonl"
        self.stderr_path = directory / "rsyslogd.log"
        self.pid_file = directory / "rsyslogd.pid"
        self.config_path = directory / "rsyslog.conf"
        (directory / "work").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            self._config(octet_counting, tls, auth_mode, max_message_size, allowed_sender),
            encoding="utf-8",
        )
        self.process: asyncio.subprocess.Process | None = None

    def _config(
        self,
        octet_counting: bool,
        tls: TlsFiles | None,
        auth_mode: str,
        max_message_size: str | None,
        allowed_sender: str | None,
    ) -> str:
        global_options = f'workDirectory="{self.directory / "work"}"'
        if max_message_size is not None:
            global_options += f' maxMessageSize="{max_message_size}"'
        if tls is not None:
            if not gtls_driver_installed():
                pytest.fail(f"rsyslog's GnuTLS driver is not installed; {INSTALL_HINT}")
            global_options += (
                f' DefaultNetstreamDriverCAFile="{tls.ca_file}"'
                f' DefaultNetstreamDriverCertFile="{tls.server_cert}"'
                f' DefaultNetstreamDriverKeyFile="{tls.server_key}"'
            )
        if self.protocol == "udp":
            inputs = (
                f'module(load="imudp")\ninput(type="imudp" address="127.0.0.1" port="{self.port}")'
            )
        else:
            driver = ""
            if tls is not None:
                driver = (
                    ' StreamDriver.Name="gtls" StreamDriver.Mode="1"'
                    f' StreamDriver.AuthMode="{auth_mode}"'
                )
            framing = "on" if octet_counting else "off"
            inputs = (
                f'module(load="imtcp"{driver})\n'
                f'input(type="imtcp" address="127.0.0.1" port="{self.port}" '
                f'SupportOctetCountedFraming="{framing}")'
            )
        allowed = [] if allowed_sender is None else [f"$AllowedSender TCP, {allowed_sender}"]
        return "\n".join(
            [
                f"global({global_options})",
                *allowed,
                inputs,
                'module(load="mmpstrucdata")',
                _template(),
                'action(type="mmpstrucdata")',
                f'action(type="omfile" file="{self.output}" template="fields")',
                "",
            ]
        )

    async def start(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        with self.stderr_path.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                self.executable,
                "-n",
                "-f",
                str(self.config_path),
                "-i",
                str(self.pid_file),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        await self._wait_until_listening()

    async def _wait_until_listening(self) -> None:
        deadline = asyncio.get_running_loop().time() + WAIT_SECS
        while not self._listening():
            assert self.process is not None
            if self.process.returncode is not None:
                pytest.fail(f"rsyslogd exited with {self.process.returncode}:\n{self.log()}")
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"rsyslogd did not listen on port {self.port}:\n{self.log()}")
            await asyncio.sleep(0.02)

    def _listening(self) -> bool:
        """Tell from /proc/net whether a socket is bound (UDP) or listening (TCP) on the port."""
        table, state = ("udp", "07") if self.protocol == "udp" else ("tcp", "0A")
        local = f"0100007F:{self.port:04X}"
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            columns = line.split()
            if columns[1] == local and columns[3] == state:
                return True
        return False

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    async def crash(self) -> None:
        """Kill rsyslogd with SIGKILL, as a crash of the receiver."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def pause(self) -> None:
        """Stop rsyslogd with SIGSTOP, and wait until every one of its threads has stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        deadline = asyncio.get_running_loop().time() + WAIT_SECS
        while not all(state == "T" for state in self._thread_states()):
            assert asyncio.get_running_loop().time() < deadline, self._thread_states()
            await asyncio.sleep(0.01)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def _thread_states(self) -> list[str]:
        """Return the state letter of each thread, from /proc: `T` for stopped."""
        assert self.process is not None
        tasks = Path(f"/proc/{self.process.pid}/task")
        # The state follows the command name, which ends with the last ')'.
        return [
            (task / "stat").read_text().rpartition(")")[2].split()[0] for task in tasks.iterdir()
        ]

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def received(self) -> list[Received]:
        if not self.output.exists():
            return []
        messages = []
        text = self.output.read_text(encoding="utf-8")
        # rsyslog may be writing the last line as the file is read: take complete lines only.
        complete = text[: text.rfind("\n") + 1]
        for line in complete.splitlines():
            fields = json.loads(line)
            for key in ("pri", "facility", "severity"):
                fields[key] = int(fields[key])
            fields["sd"] = json.loads(fields["sd"]) if fields["sd"] else {}
            messages.append(Received(**fields))
        return messages

    async def wait_for(self, count: int) -> list[Received]:
        """Wait until rsyslog wrote `count` messages; fail on a timeout or on more."""
        deadline = asyncio.get_running_loop().time() + WAIT_SECS
        while True:
            messages = self.received()
            if len(messages) >= count:
                break
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(
                    f"rsyslog wrote {len(messages)} of {count} messages within {WAIT_SECS} s:\n"
                    f"{self.log()}"
                )
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # anything beyond `count` would be a duplicate
        messages = self.received()
        assert len(messages) == count, [m.raw for m in messages]
        return messages


@pytest.fixture
async def start_rsyslog(tmp_path: Path) -> AsyncIterator[Any]:
    """Return a function that starts an rsyslogd; every one started is stopped afterwards."""
    started: list[Rsyslog] = []

    async def start(**options: Any) -> Rsyslog:
        server = Rsyslog(tmp_path / f"rsyslog-{len(started)}", **options)
        started.append(server)
        await server.start()
        return server

    yield start
    for server in started:
        if server.process is not None and server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


@pytest.fixture
async def sinks() -> AsyncIterator[list[SyslogSink]]:
    """Collect sinks to close after the test."""
    opened: list[SyslogSink] = []
    yield opened
    for sink in opened:
        await sink.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("tail-client.localhost")
    files = TlsFiles(
        ca_file=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    return files


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EventDict]]:
    """Capture the sink's structlog events, whatever logging an earlier test configured."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            monkeypatch.setattr(
                tailer.sinks.syslog, "_log", structlog.get_logger("tailer.sinks.syslog")
            )
            yield logs
    finally:
        structlog.configure(**saved)


async def open_sink(sinks: list[SyslogSink], *, clock: Any = None, **options: Any) -> SyslogSink:
    options.setdefault("hostname", HOSTNAME)
    sink = SyslogSink("siem", make_config(**options), clock=clock or FastClock())
    sinks.append(sink)
    await sink.open(None)
    return sink


def assert_delivered(
    received: list[Received], raws: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    """Check that rsyslog read each event once, in order, with every field as sent."""
    assert [message.sd.get("runtools@32473", {}).get("id") for message in received] == [
        raw["id"] for raw in raws
    ]
    for message, raw, fields in zip(received, raws, expected, strict=True):
        assert message.pri == LOCAL0 * 8 + fields["severity"]
        assert message.facility == LOCAL0
        assert message.severity == fields["severity"]
        assert message.time == fields["time"]
        assert message.hostname == HOSTNAME
        assert message.app_name == "runtools-tail"
        assert message.procid == "-"
        assert message.msgid == fields["msgid"]
        assert message.sd == {"runtools@32473": fields["sd"]}
        assert message.msg.encode() == orjson.dumps(raw)


# --- plain sockets, for exact bytes -------------------------------------------------------


@dataclass
class Capture:
    """A TCP server on 127.0.0.1 that records the bytes of each connection."""

    port: int = 0
    connections: list[bytearray] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = bytearray()
        self.connections.append(data)
        self.writers.append(writer)
        while chunk := await reader.read(65536):
            data += chunk
        writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def wait_for(self, size: int) -> bytes:
        deadline = asyncio.get_running_loop().time() + WAIT_SECS
        while sum(map(len, self.connections)) < size:
            assert asyncio.get_running_loop().time() < deadline, bytes(b"".join(self.connections))
            await asyncio.sleep(0.01)
        return b"".join(self.connections)


@pytest.fixture
async def capture() -> AsyncIterator[Capture]:
    recorder = Capture()
    recorder.server = await asyncio.start_server(recorder._handle, "127.0.0.1", 0)
    recorder.port = recorder.server.sockets[0].getsockname()[1]
    yield recorder
    await recorder.close()


async def send_captured(
    sinks: list[SyslogSink], capture: Capture, raws: list[dict[str, Any]], **options: Any
) -> list[bytes]:
    """Send one batch to the capture server; return the messages, octet-counting framing removed."""
    sink = await open_sink(sinks, port=capture.port, **options)
    await sink.send(make_batch(raws))
    await sink.close()
    return split_octet_counted(await capture.wait_for(1))


def split_octet_counted(data: bytes) -> list[bytes]:
    messages = []
    while data:
        length, _, rest = data.partition(b" ")
        size = int(length)
        messages.append(rest[:size])
        data = rest[size:]
    return messages


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "port", "limit"),
    [
        ({"protocol": "udp"}, 514, 1452),
        ({"protocol": "udp", "format": "rfc3164"}, 514, 1024),
        ({}, 514, 8096),
        ({"format": "rfc3164"}, 514, 8096),
        ({"protocol": "tls"}, 6514, 8096),
        ({"protocol": "tls", "port": 10514, "max_message_bytes": 4096}, 10514, 4096),
    ],
)
def test_config_defaults_per_protocol(options: dict[str, Any], port: int, limit: int) -> None:
    config = make_config(**options)
    assert config.target_port == port
    assert config.message_limit == limit


def test_config_defaults() -> None:
    config = make_config()
    assert config.protocol == "tcp"
    assert config.format == "rfc5424"
    assert config.framing == "octet_counting"
    assert config.facility == "local0"
    assert config.app_name == "runtools-tail"
    assert config.sd_id == "runtools@32473"
    assert config.oversize == "truncate"
    assert config.utf8_bom is False


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"protocol": "udp", "framing": "newline"}, "framing applies to tcp and tls"),
        ({"protocol": "udp", "rejection_wait_secs": 1}, "rejection_wait_secs applies to tcp"),
        ({"protocol": "tcp", "tls": {}}, "tls applies to protocol tls, not to tcp"),
        ({"format": "rfc3164", "utf8_bom": True}, "utf8_bom applies to format rfc5424"),
        ({"protocol": "udp", "max_message_bytes": 65508}, "does not fit in a UDP datagram"),
        ({"facility": "local8"}, "facility 'local8' is not a syslog facility"),
        ({"sd_id": "runtools"}, "Expected name@<private enterprise number>"),
        ({"sd_id": "run tools@32473"}, "Expected name@<private enterprise number>"),
        ({"sd_id": 'run"tools@32473'}, "Expected name@<private enterprise number>"),
        ({"app_name": "runtools tail"}, "printable ASCII without spaces"),
        ({"hostname": "hôte"}, "printable ASCII without spaces"),
        ({"msgid": "m" * 33}, "at most 32 characters"),
        ({"format": "rfc3164", "app_name": "a" * 33}, "invalid as an RFC 3164 TAG"),
        ({"format": "rfc3164", "app_name": "app:x"}, "invalid as an RFC 3164 TAG"),
        ({"max_message_bytes": 479}, "greater than or equal to 480"),
        ({"protocol": "relp"}, "'udp', 'tcp' or 'tls'"),
        ({"tls": {"key_file": "key.pem"}, "protocol": "tls"}, "tls.key_file is set without"),
        ({"hots": "typo"}, "Extra inputs are not permitted"),
    ],
)
def test_config_invalid_rejected(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("(", r"\(")):
        make_config(**options)


def test_config_requires_host() -> None:
    with pytest.raises(ValidationError, match="host"):
        SyslogSinkConfig.model_validate({})


# --- exact bytes --------------------------------------------------------------------------


async def test_rfc5424_message_exact(sinks: list[SyslogSink], capture: Capture) -> None:
    [message] = await send_captured(sinks, capture, EVENTS[:1])
    assert message == (
        b"<131>1 2026-05-10T12:00:00.123456Z tail-host.example runtools-tail - agent.run.failed "
        b'[runtools@32473 id="act_1" type="agent.run.failed" resource="agent/agt_1" org="org_7"] '
        + orjson.dumps(EVENTS[0])
    )


async def test_octet_counting_frames_exact(sinks: list[SyslogSink], capture: Capture) -> None:
    payload = b'{"id":"act_9"}'
    raw = {"id": "act_9", "createdAt": "2026-05-10T12:00:00Z"}
    sink = await open_sink(sinks, port=capture.port, sd_id=None, facility="user")
    await sink.send(make_batch([raw, raw], payloads=[payload, payload]))
    await sink.close()
    message = b"<14>1 2026-05-10T12:00:00.000000Z tail-host.example runtools-tail - - - " + payload
    assert await capture.wait_for(1) == 2 * (b"%d " % len(message) + message)


async def test_newline_framing_exact(sinks: list[SyslogSink], capture: Capture) -> None:
    sink = await open_sink(sinks, port=capture.port, framing="newline")
    await sink.send(make_batch(EVENTS[2:4]))
    await sink.close()
    data = await capture.wait_for(1)
    assert data.count(b"\n") == 2
    assert data.endswith(orjson.dumps(EVENTS[3]) + b"\n")
    assert data.startswith(b"<133>1 2026-05-10T12:00:02.500000Z ")


async def test_rfc3164_message_exact(sinks: list[SyslogSink], capture: Capture) -> None:
    raw = {"id": "act_5", "createdAt": "2026-03-01T08:04:05.9Z", "severity": "warning"}
    [message] = await send_captured(sinks, capture, [raw], format="rfc3164")
    assert message == b"<132>Mar  1 08:04:05 tail-host.example runtools-tail: " + orjson.dumps(raw)


@pytest.mark.parametrize(
    ("severity", "code"),
    [
        ("error", 3),
        ("warning", 4),
        ("success", 5),
        ("info", 6),
        ("ERROR", 3),
        ("critical", 6),
        (None, 6),
        (7, 6),
    ],
)
async def test_severity_maps_to_pri(
    sinks: list[SyslogSink], capture: Capture, severity: Any, code: int
) -> None:
    raw = {"id": "act_1", "createdAt": "2026-05-10T12:00:00Z", "severity": severity}
    [message] = await send_captured(sinks, capture, [raw], facility="daemon")
    assert message.startswith(b"<%d>1 " % (3 * 8 + code))


@pytest.mark.parametrize(
    ("event_type", "options", "msgid"),
    [
        ("installable_agent_install.completed", {}, b"installable_agent_install.comple"),
        ("agent run/ünï", {}, b"agent_run/_n_"),
        ("", {}, b"-"),
        (None, {}, b"-"),
        ("agent.run.failed", {"msgid": "AUDIT"}, b"AUDIT"),
    ],
)
async def test_msgid_from_event_type(
    sinks: list[SyslogSink],
    capture: Capture,
    event_type: str | None,
    options: dict[str, Any],
    msgid: bytes,
) -> None:
    raw = {"id": "act_1", "createdAt": "2026-05-10T12:00:00Z", "eventType": event_type}
    [message] = await send_captured(sinks, capture, [raw], sd_id=None, **options)
    header = b"<134>1 2026-05-10T12:00:00.000000Z tail-host.example runtools-tail - "
    assert message == header + msgid + b" - " + orjson.dumps(raw)


async def test_structured_data_escaped(sinks: list[SyslogSink], capture: Capture) -> None:
    raw = {
        "id": 'a"b\\c]d',
        "createdAt": "2026-05-10T12:00:00Z",
        "eventType": "line\nbreak\ttab",
        "resourceId": 42,
        "orgId": None,
    }
    [message] = await send_captured(sinks, capture, [raw], sd_id="audit@32473.1")
    assert (
        b'[audit@32473.1 id="a\\"b\\\\c\\]d" type="line\xef\xbf\xbdbreak\xef\xbf\xbdtab" '
        b'resource="-/42"] '
    ) in message


async def test_utf8_bom_precedes_payload(sinks: list[SyslogSink], capture: Capture) -> None:
    [message] = await send_captured(sinks, capture, EVENTS[1:2], utf8_bom=True)
    assert message.endswith(b"] \xef\xbb\xbf" + orjson.dumps(EVENTS[1]))


async def test_default_hostname_is_machine_name(sinks: list[SyslogSink], capture: Capture) -> None:
    sink = SyslogSink("siem", make_config(port=capture.port), clock=FastClock())
    sinks.append(sink)
    await sink.open(None)
    await sink.send(make_batch(EVENTS[3:4]))
    await sink.close()
    [message] = split_octet_counted(await capture.wait_for(1))
    hostname = message.split(b" ")[2].decode()
    assert hostname in (socket.getfqdn(), socket.gethostname())
    assert hostname != "localhost"


async def test_newline_framing_rejects_newline_payload(
    sinks: list[SyslogSink], capture: Capture
) -> None:
    sink = await open_sink(sinks, port=capture.port, framing="newline")
    batch = make_batch(EVENTS[:2], payloads=[b"CEF:0|a", b"CEF:0|b\nsecond line"])
    with pytest.raises(SinkError, match="1 event encoded as json with a newline") as caught:
        await sink.send(batch)
    assert caught.value.retriable is False
    assert "act_2" in str(caught.value)
    assert "act_1" not in str(caught.value)
    await sink.close()
    await asyncio.sleep(0.05)
    assert b"".join(capture.connections) == b""


async def test_empty_batch_sends_nothing(sinks: list[SyslogSink], capture: Capture) -> None:
    sink = await open_sink(sinks, port=capture.port)
    assert await sink.send(make_batch([])) is None
    await sink.close()
    await asyncio.sleep(0.05)
    assert b"".join(capture.connections) == b""


async def test_send_before_open_raises() -> None:
    sink = SyslogSink("siem", make_config())
    with pytest.raises(RuntimeError, match="not open"):
        await sink.send(make_batch(EVENTS[:1]))


async def test_close_twice_harmless(capture: Capture) -> None:
    sink = SyslogSink("siem", make_config(port=capture.port), clock=FastClock())
    await sink.close()
    await sink.open(None)
    await sink.close()
    await sink.close()
    with pytest.raises(RuntimeError, match="not open"):
        await sink.send(make_batch(EVENTS[:1]))


# --- delivery to rsyslog ------------------------------------------------------------------


async def test_udp_delivers_once(sinks: list[SyslogSink], start_rsyslog: Any) -> None:
    rsyslog = await start_rsyslog(protocol="udp")
    sink = await open_sink(sinks, protocol="udp", port=rsyslog.port)
    await sink.send(make_batch(EVENTS[:2]))
    await sink.send(make_batch(EVENTS[2:], first_seq=3))
    assert_delivered(await rsyslog.wait_for(4), EVENTS, EXPECTED)


async def test_tcp_octet_counting_delivers_once(
    sinks: list[SyslogSink], start_rsyslog: Any
) -> None:
    rsyslog = await start_rsyslog(protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port)
    await sink.send(make_batch(EVENTS[:3]))
    await sink.send(make_batch(EVENTS[3:], first_seq=4))
    assert_delivered(await rsyslog.wait_for(4), EVENTS, EXPECTED)


async def test_tcp_newline_framing_delivers_once(
    sinks: list[SyslogSink], start_rsyslog: Any
) -> None:
    rsyslog = await start_rsyslog(protocol="tcp", octet_counting=False)
    sink = await open_sink(sinks, port=rsyslog.port, framing="newline")
    await sink.send(make_batch(EVENTS))
    assert_delivered(await rsyslog.wait_for(4), EVENTS, EXPECTED)


async def test_tls_delivers_once(
    sinks: list[SyslogSink], start_rsyslog: Any, tls_files: TlsFiles
) -> None:
    rsyslog = await start_rsyslog(protocol="tls", tls=tls_files)
    sink = await open_sink(
        sinks,
        protocol="tls",
        host="localhost",
        port=rsyslog.port,
        tls={"ca_file": str(tls_files.ca_file)},
    )
    await sink.send(make_batch(EVENTS[:2]))
    await sink.send(make_batch(EVENTS[2:], first_seq=3))
    assert_delivered(await rsyslog.wait_for(4), EVENTS, EXPECTED)


async def test_tls_client_certificate_accepted(
    sinks: list[SyslogSink], start_rsyslog: Any, tls_files: TlsFiles
) -> None:
    rsyslog = await start_rsyslog(protocol="tls", tls=tls_files, auth_mode="x509/certvalid")
    sink = await open_sink(
        sinks,
        protocol="tls",
        port=rsyslog.port,
        tls={
            "ca_file": str(tls_files.ca_file),
            "cert_file": str(tls_files.client_cert),
            "key_file": str(tls_files.client_key),
            "server_name": "localhost",
        },
    )
    await sink.send(make_batch(EVENTS))
    assert_delivered(await rsyslog.wait_for(4), EVENTS, EXPECTED)


async def test_tls_rejected_client_fails_send(
    sinks: list[SyslogSink], start_rsyslog: Any, tls_files: TlsFiles
) -> None:
    # rsyslog checks the client certificate after the handshake and then closes the
    # connection, so only rejection_wait_secs (default 0.5 s, real time here) detects it.
    rsyslog = await start_rsyslog(protocol="tls", tls=tls_files, auth_mode="x509/certvalid")
    sink = SyslogSink(
        "siem",
        make_config(protocol="tls", port=rsyslog.port, tls={"ca_file": str(tls_files.ca_file)}),
    )
    sinks.append(sink)
    await sink.open(None)
    with pytest.raises(SinkError, match="closed the connection right after") as caught:
        await sink.send(make_batch(EVENTS[:1]))
    assert caught.value.retriable is True
    assert "tls.cert_file" in str(caught.value)
    assert rsyslog.received() == []


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({}, "certificate failed verification"),
        ({"ca_file": "CA", "server_name": "other.example"}, "certificate failed verification"),
    ],
)
async def test_tls_unverified_receiver_fails_send(
    sinks: list[SyslogSink],
    start_rsyslog: Any,
    tls_files: TlsFiles,
    tls: dict[str, Any],
    expected: str,
) -> None:
    rsyslog = await start_rsyslog(protocol="tls", tls=tls_files)
    if "ca_file" in tls:
        tls["ca_file"] = str(tls_files.ca_file)
    sink = await open_sink(sinks, protocol="tls", port=rsyslog.port, tls=tls)
    with pytest.raises(SinkError, match=expected) as caught:
        await sink.send(make_batch(EVENTS[:1]))
    assert caught.value.retriable is True
    assert "tls.ca_file" in str(caught.value)


async def test_tls_verify_off_accepts_unknown_ca(
    sinks: list[SyslogSink], start_rsyslog: Any, tls_files: TlsFiles
) -> None:
    rsyslog = await start_rsyslog(protocol="tls", tls=tls_files)
    sink = await open_sink(sinks, protocol="tls", port=rsyslog.port, tls={"verify": False})
    await sink.send(make_batch(EVENTS))
    assert_delivered(await rsyslog.wait_for(4), EVENTS, EXPECTED)


async def test_tls_missing_ca_file_fails_open(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    sink = SyslogSink("siem", make_config(protocol="tls", tls={"ca_file": str(missing)}))
    with pytest.raises(ConfigError, match=r"tls\.ca_file .* cannot be loaded"):
        await sink.open(None)


async def test_rfc3164_delivered(sinks: list[SyslogSink], start_rsyslog: Any) -> None:
    rsyslog = await start_rsyslog(protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port, format="rfc3164")
    await sink.send(make_batch(EVENTS))
    received = await rsyslog.wait_for(4)
    stamps = ["May 10 12:00:00", "May 10 12:00:01", "May 10 12:00:02", "May 10 12:00:03"]
    for message, raw, fields, stamp in zip(received, EVENTS, EXPECTED, stamps, strict=True):
        assert message.pri == LOCAL0 * 8 + fields["severity"]
        assert message.raw.startswith(f"<{message.pri}>{stamp} {HOSTNAME} runtools-tail: ")
        assert message.hostname == HOSTNAME
        assert message.app_name == "runtools-tail"
        assert message.msgid == "-"
        assert message.sd == {}
        # rsyslog keeps the space after "TAG:" in the message of an RFC 3164 message.
        assert message.msg == " " + orjson.dumps(raw).decode()


async def test_utf8_bom_kept_by_rsyslog(sinks: list[SyslogSink], start_rsyslog: Any) -> None:
    rsyslog = await start_rsyslog(protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port, utf8_bom=True)
    await sink.send(make_batch(EVENTS[1:2]))
    [message] = await rsyslog.wait_for(1)
    assert message.msg == "\ufeff" + orjson.dumps(EVENTS[1]).decode()


# --- size limits --------------------------------------------------------------------------


def big_event(event_id: str, note_chars: int) -> dict[str, Any]:
    """Return an event whose payload is large, with 3-byte characters around any cut."""
    return {
        "id": event_id,
        "createdAt": "2026-05-10T12:00:00Z",
        "eventType": "agent.run.completed",
        "note": "日" * note_chars,
    }


def event_of_size(event_id: str, size: int) -> dict[str, Any]:
    """Return an event whose RFC 5424 message, as `open_sink` configures it, is `size` bytes."""
    header = (
        b"<134>1 2026-05-10T12:00:00.000000Z tail-host.example runtools-tail - "
        b'agent.run.completed [runtools@32473 id="%b" type="agent.run.completed"] '
    ) % event_id.encode()
    raw = big_event(event_id, 0)
    raw["note"] = "x" * (size - len(header) - len(orjson.dumps(raw)))
    return raw


async def test_oversize_truncated_with_marker(
    sinks: list[SyslogSink], start_rsyslog: Any, captured_logs: list[EventDict]
) -> None:
    rsyslog = await start_rsyslog(protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port, max_message_bytes=1000)
    raws = [big_event("big_1", 600), EVENTS[0], big_event("big_2", 400)]
    await sink.send(make_batch(raws))
    received = await rsyslog.wait_for(3)

    for message, raw in zip(received, raws, strict=True):
        assert len(message.raw.encode()) <= 1000
        assert message.sd["runtools@32473"]["id"] == raw["id"]
    for index in (0, 2):
        body = received[index].msg.encode()
        assert body.endswith(TRUNCATION_MARKER)
        kept = body.removesuffix(TRUNCATION_MARKER)
        assert orjson.dumps(raws[index]).startswith(kept)
        assert len(received[index].raw.encode()) >= 1000 - 2  # cut at a 3-byte character
    assert received[1].msg.encode() == orjson.dumps(EVENTS[0])

    assert sink.truncated == 2
    warnings = [log for log in captured_logs if log["event"] == "syslog.truncated"]
    assert len(warnings) == 1  # the second truncation within a minute is counted, not logged
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["event_id"] == "big_1"
    assert warnings[0]["max_message_bytes"] == 1000
    assert warnings[0]["bytes"] > 1000


async def test_default_limit_fits_default_rsyslog(
    sinks: list[SyslogSink], start_rsyslog: Any
) -> None:
    rsyslog = await start_rsyslog(protocol="tcp", max_message_size=None)
    sink = await open_sink(sinks, port=rsyslog.port)
    raws = [event_of_size("exact", 8096), event_of_size("over", 8097)]
    await sink.send(make_batch(raws))
    received = await rsyslog.wait_for(2)

    assert [len(message.raw.encode()) for message in received] == [8096, 8096]
    assert received[0].msg.encode() == orjson.dumps(raws[0])
    assert received[1].msg.encode().endswith(TRUNCATION_MARKER)
    assert "oversize" not in rsyslog.log()


async def test_oversize_dead_letter_rejects_batch(
    sinks: list[SyslogSink], start_rsyslog: Any
) -> None:
    rsyslog = await start_rsyslog(protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port, max_message_bytes=1000, oversize="dead_letter")
    batch = make_batch([EVENTS[0], big_event("big_1", 600), big_event("big_2", 400)])
    with pytest.raises(SinkError, match=r"2 events exceeded max_message_bytes \(1000\)") as caught:
        await sink.send(batch)
    assert caught.value.retriable is False
    assert "big_1 (" in str(caught.value)
    assert "big_2 (" in str(caught.value)
    assert "act_1" not in str(caught.value)
    assert sink.truncated == 0

    # Nothing of the rejected batch was sent: the next batch is all rsyslog receives.
    await sink.send(make_batch(EVENTS[1:2], first_seq=4))
    [message] = await rsyslog.wait_for(1)
    assert message.sd["runtools@32473"]["id"] == "act_2"


async def test_header_larger_than_limit_rejected(sinks: list[SyslogSink], capture: Capture) -> None:
    sink = await open_sink(sinks, port=capture.port, max_message_bytes=480)
    raw = {"id": "x" * 500, "createdAt": "2026-05-10T12:00:00Z"}
    with pytest.raises(SinkError, match="cannot be truncated to max_message_bytes") as caught:
        await sink.send(make_batch([raw]))
    assert caught.value.retriable is False


class DatagramRelay(asyncio.DatagramProtocol):
    """Forwards datagrams to rsyslog and records each one's size."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sizes: list[int] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.sizes.append(len(data))
        self.transport.sendto(data, self.target)


async def test_udp_datagrams_within_limit(sinks: list[SyslogSink], start_rsyslog: Any) -> None:
    rsyslog = await start_rsyslog(protocol="udp")
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(
        lambda: DatagramRelay(("127.0.0.1", rsyslog.port)), local_addr=("127.0.0.1", 0)
    )
    try:
        relay_port = transport.get_extra_info("sockname")[1]
        sink = await open_sink(sinks, protocol="udp", port=relay_port)
        limit = 1452
        exact = event_of_size("exact", limit)  # sent whole
        raws = [big_event("big_1", 2000), exact, EVENTS[0], big_event("big_2", 20000)]
        await sink.send(make_batch(raws))
        received = await rsyslog.wait_for(4)
    finally:
        transport.close()

    assert relay.sizes[1] == limit
    assert all(size <= limit for size in relay.sizes), relay.sizes
    assert [len(message.raw.encode()) for message in received] == relay.sizes
    assert [message.msg.encode().endswith(TRUNCATION_MARKER) for message in received] == [
        True,
        False,
        False,
        True,
    ]
    assert received[1].msg.encode() == orjson.dumps(exact)
    assert sink.truncated == 2


# --- connections --------------------------------------------------------------------------


async def test_reconnect_after_rsyslog_restart(
    sinks: list[SyslogSink], start_rsyslog: Any, captured_logs: list[EventDict]
) -> None:
    rsyslog = await start_rsyslog(protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port)
    await sink.send(make_batch(numbered_events(1, 3)))
    await rsyslog.wait_for(3)

    await rsyslog.stop()
    # The sink finds the connection closed by rsyslog, and cannot open a new one.
    with pytest.raises(SinkError, match="Connection refused") as caught:
        await sink.send(make_batch(numbered_events(4, 3), first_seq=4))
    assert caught.value.retriable is True

    await rsyslog.start()
    # The runner sends the same batch again, then the next one.
    await sink.send(make_batch(numbered_events(4, 3), first_seq=4))
    await sink.send(make_batch(numbered_events(7, 3), first_seq=7))
    received = await rsyslog.wait_for(9)
    ids = [message.sd["runtools@32473"]["id"] for message in received]
    assert ids == [f"evt_{n}" for n in range(1, 10)]

    disconnected = [log for log in captured_logs if log["event"] == "syslog.disconnected"]
    assert [log["reason"] for log in disconnected] == ["the receiver closed the connection"]


async def test_restart_between_batches_loses_nothing(
    sinks: list[SyslogSink], start_rsyslog: Any
) -> None:
    rsyslog = await start_rsyslog(protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port)
    await sink.send(make_batch(numbered_events(1, 2)))
    await rsyslog.wait_for(2)

    await rsyslog.stop()
    await rsyslog.start()
    await sink.send(make_batch(numbered_events(3, 2), first_seq=3))
    received = await rsyslog.wait_for(4)
    assert [m.sd["runtools@32473"]["id"] for m in received] == [f"evt_{n}" for n in range(1, 5)]


async def test_receiver_crash_loses_confirmed_batch(
    sinks: list[SyslogSink], start_rsyslog: Any, captured_logs: list[EventDict]
) -> None:
    # The documented limit of syslog over TCP: a confirmed batch is in the kernel's
    # buffers, not stored by the receiver, so a receiver crash can lose it.
    rsyslog = await start_rsyslog(protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port)
    await sink.send(make_batch(numbered_events(1, 2)))
    await rsyslog.wait_for(2)

    await rsyslog.pause()  # rsyslog stops reading, so the next batch waits in its socket buffer
    await sink.send(make_batch(numbered_events(3, 2), first_seq=3))
    await rsyslog.crash()

    await rsyslog.start()
    await sink.send(make_batch(numbered_events(5, 2), first_seq=5))
    received = await rsyslog.wait_for(4)
    ids = [message.sd["runtools@32473"]["id"] for message in received]
    assert ids == ["evt_1", "evt_2", "evt_5", "evt_6"]

    # The kernel reset the connection, which held unread bytes, when rsyslogd died.
    disconnected = [log for log in captured_logs if log["event"] == "syslog.disconnected"]
    assert [log["reason"] for log in disconnected] == ["connection reset: Connection reset by peer"]


async def test_disallowed_sender_fails_send(sinks: list[SyslogSink], start_rsyslog: Any) -> None:
    # rsyslog accepts the connection of a sender it does not allow, then closes it.
    rsyslog = await start_rsyslog(protocol="tcp", allowed_sender="192.0.2.1")
    sink = SyslogSink("siem", make_config(port=rsyslog.port))  # rejection_wait_secs: 0.5 s
    sinks.append(sink)
    await sink.open(None)
    with pytest.raises(SinkError, match="closed the connection right after") as caught:
        await sink.send(make_batch(EVENTS[:1]))
    assert caught.value.retriable is True
    assert "disallowed sender" in rsyslog.log()
    assert rsyslog.received() == []


# Run in a child process: open a sink, send a large batch, report it confirmed, then wait
# for the SIGKILL.
SENDER_SCRIPT = """
import asyncio, sys
import orjson
import structlog
from tailer.event import parse_event
from tailer.sinks.base import Batch
from tailer.sinks.syslog import SyslogSink, SyslogSinkConfig

async def main() -> None:
    # Logs go to stderr, so stdout carries only "confirmed".
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    config = SyslogSinkConfig(host="127.0.0.1", port=int(sys.argv[1]), rejection_wait_secs=0)
    sink = SyslogSink("siem", config)
    await sink.open(None)
    raws = [
        {"id": f"evt_{n}", "createdAt": "2026-05-10T12:00:00Z", "note": "x" * 1000}
        for n in range(int(sys.argv[2]))
    ]
    events = [parse_event(raw) for raw in raws]
    payloads = [orjson.dumps(raw) for raw in raws]
    await sink.send(Batch("siem", events, payloads, 1, len(raws)))
    print("confirmed", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_confirmed_batch_survives_sender_kill(start_rsyslog: Any) -> None:
    # A confirmed batch is in the kernel, which goes on sending it after the sender died.
    count = 1000  # about 1.1 MB, which the loopback socket buffers hold
    rsyslog = await start_rsyslog(protocol="tcp")
    await rsyslog.pause()
    sender = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SENDER_SCRIPT,
        str(rsyslog.port),
        str(count),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert sender.stdout is not None
        line = await asyncio.wait_for(sender.stdout.readline(), WAIT_SECS)
        assert line == b"confirmed\n"
    finally:
        sender.kill()
        await sender.wait()

    rsyslog.resume()
    received = await rsyslog.wait_for(count)
    ids = [message.sd["runtools@32473"]["id"] for message in received]
    assert ids == [f"evt_{n}" for n in range(count)]


async def test_receiver_down_at_open(
    sinks: list[SyslogSink], tmp_path: Path, captured_logs: list[EventDict]
) -> None:
    rsyslog = Rsyslog(tmp_path / "rsyslog", protocol="tcp")
    sink = await open_sink(sinks, port=rsyslog.port)
    [failure] = [log for log in captured_logs if log["event"] == "syslog.connect_failed"]
    assert failure["log_level"] == "warning"
    assert "Connection refused" in failure["error"]

    with pytest.raises(SinkError, match="cannot connect to syslog receiver") as caught:
        await sink.send(make_batch(EVENTS[:1]))
    assert caught.value.retriable is True

    await rsyslog.start()
    try:
        await sink.send(make_batch(EVENTS[:1]))
        [message] = await rsyslog.wait_for(1)
    finally:
        await rsyslog.stop()
    assert message.sd["runtools@32473"]["id"] == "act_1"


async def test_udp_closed_port_fails_later_send(sinks: list[SyslogSink]) -> None:
    port = free_port(socket.SOCK_DGRAM)
    sink = await open_sink(sinks, protocol="udp", port=port)
    # The first datagram is sent. The ICMP port unreachable it causes makes a later send fail.
    await sink.send(make_batch(EVENTS[:1]))
    await asyncio.sleep(0.05)
    with pytest.raises(SinkError, match="ICMP port unreachable") as caught:
        await sink.send(make_batch(EVENTS[1:2], first_seq=2))
    assert caught.value.retriable is True


async def test_unresolvable_host_fails_send(sinks: list[SyslogSink]) -> None:
    sink = await open_sink(sinks, host="no-such-host.invalid")
    with pytest.raises(SinkError, match="cannot be resolved") as caught:
        await sink.send(make_batch(EVENTS[:1]))
    assert caught.value.retriable is True


@pytest.mark.parametrize("protocol", ["udp", "tcp", "tls"])
def test_delivers_on_uvloop(tmp_path: Path, tls_files: TlsFiles, protocol: str) -> None:
    # The daemon runs on uvloop, whose socket methods are its own implementation.
    options: dict[str, Any] = {"protocol": protocol, "hostname": HOSTNAME}
    if protocol == "tls":
        options["tls"] = {"ca_file": str(tls_files.ca_file), "server_name": "localhost"}

    async def scenario() -> list[Received]:
        rsyslog = Rsyslog(
            tmp_path / "rsyslog", protocol=protocol, tls=tls_files if protocol == "tls" else None
        )
        await rsyslog.start()
        sink = SyslogSink("siem", make_config(port=rsyslog.port, **options), clock=FastClock())
        try:
            await sink.open(None)
            await sink.send(make_batch(EVENTS))
            return await rsyslog.wait_for(4)
        finally:
            await sink.close()
            await rsyslog.stop()

    assert_delivered(uvloop.run(scenario()), EVENTS, EXPECTED)


def test_rsyslogd_missing_fails_with_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(pytest.fail.Exception, match=r"install-test-tools\.sh"):
        require_rsyslogd()


def test_install_script_is_executable() -> None:
    script = Path(__file__).parents[2] / "scripts" / "install-test-tools.sh"
    assert os.access(script, os.X_OK)


def test_field_text_keeps_large_integers() -> None:
    # Fields are decoded with integers exact, and orjson cannot write one beyond 64 bits.
    assert tailer.sinks.syslog._text(2**70) == "1180591620717411303424"
    assert tailer.sinks.syslog._text({"n": float("inf")}) == '{"n":null}'
    assert tailer.sinks.syslog._text("agt_1") == "agt_1"
