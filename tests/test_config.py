from pathlib import Path

import pytest

from tailer.config import DaemonConfig, SinkFilter, load_config
from tailer.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "config").glob("*.yaml"))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("RUNTOOLS_TAIL_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_examples_exist_for_each_use() -> None:
    names = {path.name for path in EXAMPLES}

    expected = {
        "stdout.yaml",
        "file-archive.yaml",
        "webhook.yaml",
        "several-sinks.yaml",
        "siem-syslog.yaml",
        "siem-splunk.yaml",
    }
    assert expected <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_config_loads(path: Path) -> None:
    config = load_config(path)

    assert config.sources
    assert config.sinks


def test_defaults_fill_missing_fields(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "sources:\n  main: {}\nsinks:\n  out:\n    type: stdout\n")
    )

    source = config.sources["main"]
    assert source.api_url == "https://api.runtools.ai"
    assert source.token_env == "RUNTOOLS_API_KEY"
    assert source.lateness_secs == 60.0
    assert config.sinks["out"].batch.max_events == 500
    assert config.sinks["out"].retry.max_attempts is None
    assert config.max_journal_bytes == 1 << 30


def test_every_invalid_field_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
state_dir: /tmp/x
max_journal_bytes: 10
sources:
  main:
    since: yesterday
    page_size: 900
    api_url: http://api.example.invalid
    filters: {severity: [fatal]}
    colour: blue
sinks:
  out:
    type: stdout
    format: purple
    batch: {max_events: 0}
  mystery:
    type: carrier_pigeon
""",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    problems = caught.value.problems
    text = "\n".join(problems)
    assert len(problems) == 9, text
    assert (
        f"{path}: max_journal_bytes: Input should be greater than or equal to 1048576 (value 10)"
        in problems
    )
    assert (
        f"{path}: sources.main.since: 'yesterday' is invalid; expected a duration before now "
        "(30s, 10m or -10m, 2h, 7d) or an ISO 8601 time (2026-05-10T12:00:00Z)"
    ) in problems
    assert "(value 'yesterday')" not in text
    assert "sources.main.page_size: Input should be less than or equal to 500 (value 900)" in text
    assert "sources.main.filters: filter severity has invalid value 'fatal'" in text
    assert "sources.main.colour: unknown option (value 'blue'); check the spelling" in text
    assert "sinks.out.batch.max_events: Input should be greater than or equal to 1" in text
    assert "sources.main.api_url: 'http://api.example.invalid' uses" in text
    assert "(value 'http://api.example.invalid')" not in text
    assert (
        "sinks.out.format: Input should be 'pretty', 'json' or 'template' (value 'purple')" in text
    )
    assert "sinks.mystery.type: unknown sink type 'carrier_pigeon'" in text


def test_sink_options_checked_after_common_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
sources: {main: {}}
sinks:
  out: {type: stdout, format: purple}
  mystery: {type: carrier_pigeon}
""",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    problems = caught.value.problems
    assert len(problems) == 2
    assert "sinks.out.format: Input should be 'pretty', 'json' or 'template'" in problems[0]
    assert "sinks.mystery.type: unknown sink type 'carrier_pigeon'; installed types:" in problems[1]
    assert "stdout" in problems[1]


def test_duplicate_names_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n  main: {}\n  main: {since: 2h}\nsinks:\n  out: {type: stdout}\n",
    )

    with pytest.raises(ConfigError, match="duplicate key 'main'"):
        load_config(path)


def test_invalid_names_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  Main-Feed: {}\nsinks:\n  out: {type: stdout}\n")

    with pytest.raises(ConfigError, match=r"invalid names \['Main-Feed'\]"):
        load_config(path)


def test_missing_sections_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "state_dir: /tmp/x\n"))

    assert [p.split(": ", 1)[1] for p in caught.value.problems] == [
        "sources: Field required (missing)",
        "sinks: Field required (missing)",
    ]


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "sources: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("since", ["90m", "-90m"])
def test_source_since_with_optional_minus(tmp_path: Path, since: str) -> None:
    from tailer.poller import TimeBound
    from tailer.sources import build_source

    path = write(
        tmp_path,
        f"sources:\n  main: {{since: '{since}'}}\nsinks:\n  out: {{type: stdout}}\n",
    )

    config = load_config(path)
    _, settings = build_source("main", config.sources["main"], {"RUNTOOLS_API_KEY": "k"})

    assert settings.since == TimeBound(ago_ns=90 * 60 * 10**9)


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        "state_dir: /from/file\nsources:\n  main: {since: 1h, page_size: 100}\n"
        "sinks:\n  out: {type: stdout}\n",
    )
    monkeypatch.setenv("RUNTOOLS_TAIL_STATE_DIR", "/from/env")
    monkeypatch.setenv("RUNTOOLS_TAIL_SOURCES__MAIN__SINCE", "2h")
    monkeypatch.setenv("RUNTOOLS_TAIL_SINKS__OUT__BATCH__MAX_EVENTS", "7")

    config = load_config(path)

    assert config.state_dir == Path("/from/env")
    assert config.sources["main"].since == "2h"
    assert config.sources["main"].page_size == 100
    assert config.sinks["out"].batch.max_events == 7


def test_environment_alone_configures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTOOLS_TAIL_SOURCES__MAIN__API_URL", "http://127.0.0.1:8080")
    monkeypatch.setenv("RUNTOOLS_TAIL_SINKS__OUT__TYPE", "stdout")

    config = DaemonConfig()  # type: ignore[call-arg]

    assert config.sources["main"].api_url == "http://127.0.0.1:8080"
    assert config.sinks["out"].type == "stdout"


@pytest.mark.parametrize(
    ("event", "admitted"),
    [
        ({"severity": "error", "eventType": "agent.run.failed", "resourceType": "agent"}, True),
        ({"severity": "warning", "eventType": "agent.run.failed", "resourceType": "agent"}, True),
        ({"severity": "info", "eventType": "agent.run.failed", "resourceType": "agent"}, False),
        ({"severity": "success", "eventType": "agent.run.failed", "resourceType": "agent"}, False),
        ({"severity": "critical", "eventType": "agent.run.failed", "resourceType": "agent"}, True),
        ({"eventType": "agent.run.failed", "resourceType": "agent"}, True),
        ({"severity": "error", "eventType": "tool.call.failed", "resourceType": "agent"}, False),
        ({"severity": "error", "eventType": "agent.run.failed", "resourceType": "tool"}, False),
        ({"severity": "error", "resourceType": "agent"}, False),
    ],
)
def test_sink_filter(event: dict[str, str], admitted: bool) -> None:
    rule = SinkFilter(
        min_severity="warning", event_types=["agent.*.failed"], resource_types=["agent"]
    )

    assert rule.admits(event) is admitted


def test_config_errors_never_print_secrets(tmp_path: Path) -> None:
    secret = "whsec_not-base64-but-secret"
    token = "rt_live_inline_token_value"
    path = write(
        tmp_path,
        f"""
sources: {{main: {{}}}}
sinks:
  hook:
    type: webhook
    url: https://hooks.example.invalid/x
    signing_secret: {secret}
    auth: {{type: bearer, token: {token}, token_env: ALSO_SET}}
    colour: blue
""",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    text = "\n".join(caught.value.problems)
    assert "sinks.hook.signing_secret" in text
    assert "sinks.hook.auth" in text
    assert secret not in text
    assert token not in text
    assert "value hidden" in text


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        (
            "sources: {main: {api_url: 'ftp://files'}}\nsinks: {out: {type: stdout}}\n",
            "sources.main.api_url: 'ftp://files' is invalid; expected https://host[:port], "
            "or http:// to this machine (localhost, 127.0.0.1, ::1)",
        ),
        (
            "sources: {main: {}}\nsinks:\n"
            "  hook: {type: webhook, url: 'http://hooks.example.invalid/in?key=k1'}\n",
            "sinks.hook: url 'http://hooks.example.invalid/in?***' uses plain http to a host "
            "that is not loopback; use https, or set allow_insecure_http: true to send events "
            "and credentials unencrypted",
        ),
    ],
)
def test_problem_shows_value_once(tmp_path: Path, sections: str, problem: str) -> None:
    path = write(tmp_path, sections)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.problems == [f"{path}: {problem}"]


def test_hidden_section_shows_numbers_only(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources: {main: {}}\nsinks:\n  hook:\n    type: webhook\n"
        "    url: https://127.0.0.1:9/in\n    timeout_secs: -5\n    mode: xml\n"
        "    auth: {type: basic, username: u, password: 123456, token: 7}\n",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    text = "\n".join(caught.value.problems)
    assert f"{path}: sinks.hook.timeout_secs: Input should be greater than 0 (value -5)" in text
    assert "sinks.hook.mode: Input should be 'json_array', 'ndjson' or 'single' (value hidden)" in (
        text
    )
    assert "123456" not in text


def test_cross_field_problem_listed_with_field_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources: {main: {}}\nsinks:\n  hook:\n    type: webhook\n"
        "    url: https://127.0.0.1:9/in\n    mode: xml\n"
        f"    signing_secret_file: {tmp_path / 'secret'}\n    signing_secret_env: SIGNING_SECRET\n",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.problems == [
        f"{path}: sinks.hook.mode: Input should be 'json_array', 'ndjson' or 'single' "
        "(value hidden)",
        f"{path}: sinks.hook: set at most one of signing_secret, signing_secret_env, "
        "signing_secret_file",
    ]


def test_stdout_template_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources: {main: {}}\nsinks:\n  a: {type: stdout, format: template}\n"
        "  b: {type: stdout, format: template, template: '{title'}\n",
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert len(caught.value.problems) == 2
    assert caught.value.problems[0].endswith(
        "sinks.a: output format 'template' needs a template, such as "
        "'{time} {severity} {eventType} {attributes.exit_code}', but none was given."
    )
    assert "sinks.b: invalid template '{title'" in caught.value.problems[1]


def test_check_config_takes_option_or_argument(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "sources:\n  main:\n    api_url: http://127.0.0.1:8080\n"
        f"sinks:\n  archive:\n    type: file\n    path: {tmp_path / 'a.ndjson'}\n"
    )
    expected = f"{config}: valid: 1 source(s) (main), 1 sink(s) (archive (file))\n"

    def check(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tailer", "check-config", *arguments],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    for arguments in ([str(config)], ["--config", str(config)]):
        result = check(*arguments)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected

    other = tmp_path / "other.yaml"
    result = check(str(config), "--config", str(other))
    assert result.returncode == 2
    assert f"two config files given, {config} and {other}; give one" in result.stderr


def test_check_config_from_environment_alone(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RUNTOOLS_TAIL_")},
        "RUNTOOLS_TAIL_STATE_DIR": str(tmp_path / "state"),
        "RUNTOOLS_TAIL_SOURCES__MAIN__API_URL": "http://127.0.0.1:8080",
        "RUNTOOLS_TAIL_SINKS__ARCHIVE__TYPE": "file",
        "RUNTOOLS_TAIL_SINKS__ARCHIVE__PATH": str(tmp_path / "a.ndjson"),
    }

    result = subprocess.run(
        [sys.executable, "-m", "tailer", "check-config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "the environment: valid: 1 source(s) (main), 1 sink(s) (archive (file))\n"
    )


def test_no_config_names_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [name for name in os.environ if name.startswith("RUNTOOLS_TAIL_")]:
        monkeypatch.delenv(name)

    with pytest.raises(ConfigError) as caught:
        load_config(None)

    assert caught.value.problems == [
        "no config given: pass a YAML file with --config FILE, or set RUNTOOLS_TAIL_… "
        "variables such as RUNTOOLS_TAIL_SOURCES__MAIN__SINCE and RUNTOOLS_TAIL_SINKS__OUT__TYPE"
    ]


def test_check_config_checks_credentials(tmp_path: Path) -> None:
    import base64
    import os
    import subprocess
    import sys

    token = tmp_path / "token"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "sources:\n"
        f"  main:\n    api_url: http://127.0.0.1:8080\n    token_file: {token}\n"
        "  other:\n    api_url: http://127.0.0.1:8081\n    token_env: OTHER_TEST_KEY\n"
        f"sinks:\n  archive:\n    type: file\n    path: {tmp_path / 'a.ndjson'}\n"
        "  hook:\n    type: webhook\n    url: http://127.0.0.1:9000/in\n"
        "    allow_insecure_http: true\n    auth: {type: bearer, token_env: HOOK_TEST_TOKEN}\n"
        "    signing_secret_env: HOOK_TEST_SECRET\n"
        "  splunk:\n    type: splunk_hec\n    url: http://127.0.0.1:8088\n"
        "    allow_insecure_http: true\n    token_env: HEC_TEST_TOKEN\n"
    )
    config.chmod(0o600)
    secrets = {"OTHER_TEST_KEY", "HOOK_TEST_TOKEN", "HOOK_TEST_SECRET", "HEC_TEST_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in secrets}

    def check(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tailer", "check-config", str(config), *options],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    structural = check()
    assert structural.returncode == 0, structural.stderr
    sinks = "3 sink(s) (archive (file), hook (webhook), splunk (splunk_hec))"
    assert structural.stdout.endswith(f"2 source(s) (main, other), {sinks}\n")

    missing = check("--check-credentials")
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert missing.stderr.splitlines() == [
        f"runtools-tail check-config: token file {str(token)!r} not found; "
        "check sources.main.token_file",
        "runtools-tail check-config: source 'other': no API key: set OTHER_TEST_KEY or token_file",
        "runtools-tail check-config: sinks.hook.auth.token: environment variable HOOK_TEST_TOKEN "
        "is not set or empty",
        "runtools-tail check-config: sinks.hook.signing_secret: environment variable "
        "HOOK_TEST_SECRET is not set or empty",
        "runtools-tail check-config: sinks.splunk.token: environment variable HEC_TEST_TOKEN "
        "is not set or empty",
    ]

    token.write_text("rt_test_key\n")
    token.chmod(0o600)
    env["OTHER_TEST_KEY"] = "rt_other_key"
    env["HOOK_TEST_TOKEN"] = "hook-token-value"
    env["HOOK_TEST_SECRET"] = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
    env["HEC_TEST_TOKEN"] = "hec-token-value"
    found = check("--check-credentials")
    assert found.returncode == 0, found.stderr
    assert found.stdout == (
        f"{config}: valid: 2 source(s) (main, other), {sinks}; "
        "every API key and sink secret found\n"
    )
    for secret in ("rt_test_key", "rt_other_key", "hook-token-value", "hec-token-value"):
        assert secret not in found.stdout + found.stderr

    env["HOOK_TEST_SECRET"] = "not base64!"
    invalid = check("--check-credentials")
    assert invalid.returncode == 2
    assert invalid.stderr.startswith("runtools-tail check-config: sinks.hook.")
    assert "not base64!" not in invalid.stdout + invalid.stderr


def test_errors_from_variables_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        "sources:\n  main:\n    api_url: http://127.0.0.1:8080\n"
        f"sinks:\n  archive:\n    type: file\n    path: {tmp_path / 'a.ndjson'}\n"
        f"  warn:\n    type: file\n    path: {tmp_path / 'w.ndjson'}\n    fsync: sometimes\n",
    )
    monkeypatch.setenv("RUNTOOLS_TAIL_SINKS__ARCHIVE__ROTATE_MAX_BYTES", "ten")
    monkeypatch.setenv("RUNTOOLS_TAIL_SINKS__WARN__FILTER__MIN_SEVERITY", "bad")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert sorted(caught.value.problems) == [
        f"{path}: sinks.warn.fsync: Input should be 'batch' or 'interval' (value 'sometimes')",
        "RUNTOOLS_TAIL_SINKS__ARCHIVE__ROTATE_MAX_BYTES: sinks.archive.rotate_max_bytes: "
        "Input should be a valid integer, unable to parse string as an integer (value 'ten')",
        "RUNTOOLS_TAIL_SINKS__WARN__FILTER__MIN_SEVERITY: sinks.warn.filter.min_severity: "
        "Input should be 'info', 'warning' or 'error' (value 'bad')",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        (
            "RUNTOOLS_TAIL_SINKS",
            "{not json",
            'error parsing value for field "sinks" from source "EnvSettingsSource". A '
            "RUNTOOLS_TAIL_… variable for a list or a whole section must contain JSON, such as "
            '["error","warning"] or {"type":"stdout"}. Otherwise set each field in its own '
            "variable, such as RUNTOOLS_TAIL_SINKS__OUT__TYPE",
        ),
        (
            "RUNTOOLS_TAIL_SOURCES__MAIN__FILTERS__SEVERITY",
            "error,warning",
            "RUNTOOLS_TAIL_SOURCES__MAIN__FILTERS__SEVERITY: sources.main.filters.severity: "
            "Input should be a valid list (value 'error,warning'); a variable gives it as JSON, "
            'such as ["a","b"]',
        ),
    ],
)
def test_variable_without_json_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    path = write(
        tmp_path,
        "sources:\n  main: {api_url: 'http://127.0.0.1:8080'}\nsinks:\n  out: {type: stdout}\n",
    )
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.problems == [problem]


def test_empty_paths_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Path("") would be the current directory: a state directory set to an empty
    # variable would start a new journal there without a word.
    path = write(
        tmp_path,
        f"state_dir: {tmp_path / 'state'}\n"
        "sources:\n  main: {api_url: 'http://127.0.0.1:8080', token_file: ''}\n"
        "sinks:\n  archive: {type: file, path: ''}\n"
        "  hook:\n    type: webhook\n    url: http://127.0.0.1:9000/in\n"
        "    allow_insecure_http: true\n    tls: {ca_file: '  '}\n",
    )
    monkeypatch.setenv("RUNTOOLS_TAIL_STATE_DIR", "")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert sorted(caught.value.problems) == [
        f"{path}: sinks.archive.path: the path is empty: set a path (value '')",
        f"{path}: sinks.hook.tls.ca_file: the path is empty: set a path (value hidden)",
        f"{path}: sources.main.token_file: the path is empty: set a path (value hidden)",
        "RUNTOOLS_TAIL_STATE_DIR: state_dir: the path is empty: set a path (value '')",
    ]
