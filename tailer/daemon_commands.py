"""The daemon's commands: `run`, `check-config`, `state`, `dead-letters replay`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from tailer.config import DaemonConfig, load_config
from tailer.credentials import warn_if_readable_by_others
from tailer.daemon import Daemon, build_sinks, build_sources_and_sinks
from tailer.deadletters import DeadLetterFile
from tailer.encodings import get_encoder
from tailer.errors import ConfigError
from tailer.event import InvalidEventError, parse_event
from tailer.exitcodes import ExitCode
from tailer.journal import Journal
from tailer.lock import StateLock
from tailer.logs import LOG_LEVELS, configure_logging
from tailer.poller import MIN_WIDTH_NS, SourceCheckpoint
from tailer.runner import batch_limits
from tailer.sinks import Batch, SinkError
from tailer.tail import run_main
from tailer.timeparse import NS_PER_SECOND, format_iso, parse_time_or_duration

__all__ = ["run"]

CONFIG_HELP = (
    "YAML config file; RUNTOOLS_TAIL_… variables override it, "
    "and without it they are the whole config"
)
# How far `state reset --since` may lie ahead of this machine's clock. A minute
# allows for a server clock that runs ahead, and a time further ahead is a typo.
RESET_FUTURE_TOLERANCE_NS = 60 * NS_PER_SECOND


def _report(problems: list[str], prog: str) -> ExitCode:
    for problem in problems:
        print(f"{prog}: {problem}", file=sys.stderr)
    return ExitCode.USAGE_ERROR


def _load(path: str | None, prog: str) -> DaemonConfig | ExitCode:
    try:
        return load_config(path)
    except ConfigError as exc:
        return _report(exc.problems, prog)


# -- run and check-config -----------------------------------------------------


def _run(argv: Sequence[str]) -> ExitCode:
    parser = argparse.ArgumentParser(
        prog="runtools-tail run",
        description="Run the daemon: follow every configured source into every sink.",
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument("--log-format", choices=("auto", "console", "json"), default="auto")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    if args.config is not None:
        warn_if_readable_by_others(args.config, "config file")
    config = _load(args.config, parser.prog)
    if isinstance(config, ExitCode):
        return config

    daemon = Daemon(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, daemon.request_stop, signum)
        await daemon.run()

    return run_main(main)


def _check_config(argv: Sequence[str]) -> ExitCode:
    parser = argparse.ArgumentParser(
        prog="runtools-tail check-config",
        description="Validate a config file and report every invalid field at once.",
    )
    parser.add_argument("config", nargs="?", help=CONFIG_HELP)
    # The other commands take the file as --config, so this one accepts that too.
    parser.add_argument(
        "--config", dest="config_option", metavar="CONFIG", help="the same as CONFIG"
    )
    parser.add_argument(
        "--check-credentials",
        action="store_true",
        help="also read each source's API key and each sink's secrets and TLS files as `run` "
        "would: each *_env variable must be set, each *_file readable and not empty",
    )
    args = parser.parse_args(argv)
    if args.config and args.config_option and args.config != args.config_option:
        parser.error(f"two config files given, {args.config} and {args.config_option}; give one")
    path = args.config or args.config_option
    config = _load(path, parser.prog)
    if isinstance(config, ExitCode):
        return config
    if args.check_credentials:
        try:
            build_sources_and_sinks(config)
        except ConfigError as exc:
            return _report(exc.problems, parser.prog)
    print(
        f"{path or 'the environment'}: valid: {len(config.sources)} source(s) "
        f"({', '.join(config.sources)}), {len(config.sinks)} sink(s) "
        f"({', '.join(f'{name} ({s.type})' for name, s in config.sinks.items())})"
        + ("; every API key and sink secret found" if args.check_credentials else "")
    )
    return ExitCode.OK


# -- state ----------------------------------------------------------------------


def _state_report(journal: Journal, config: DaemonConfig) -> dict[str, Any]:
    now_ns = time.time_ns()
    sources = {}
    for name in config.sources:
        checkpoint = journal.source_checkpoint(name)
        high_water = checkpoint.get("high_water_ns") if checkpoint else None
        sources[name] = {
            "high_water": format_iso(high_water, digits=3) if high_water else None,
            "floor": format_iso(checkpoint["floor_ns"], digits=3) if checkpoint else None,
            "lag_seconds": round((now_ns - high_water) / NS_PER_SECOND, 3) if high_water else None,
            # Windows are re-read from their start after a restart, so no cursor is stored.
            "cursor": None,
        }
    offsets = journal.sink_offsets()
    sinks = {}
    for name in config.sinks:
        offset = offsets.get(name)
        sinks[name] = {
            "offset": offset,
            "backlog": journal.backlog(offset) if offset is not None else None,
        }
    return {
        "sources": sources,
        "sinks": sinks,
        "newest_seq": journal.newest_seq(),
        "journal_bytes": journal.used_bytes(),
        "journal_file_bytes": journal.file_bytes(),
        "status": journal.statuses(),
    }


def _print_state(report: dict[str, Any]) -> None:
    print("sources:")
    for name, source in report["sources"].items():
        lag = source["lag_seconds"]
        print(
            f"  {name}: high-water mark {source['high_water'] or '-'}, floor "
            f"{source['floor'] or '-'}, lag {f'{lag}s' if lag is not None else '-'}, cursor -"
        )
    print("sinks:")
    for name, sink in report["sinks"].items():
        if sink["offset"] is None:
            print(f"  {name}: not started yet")
        else:
            print(f"  {name}: offset {sink['offset']}, backlog {sink['backlog']} event(s)")
    print(
        f"journal: newest seq {report['newest_seq']}, {report['journal_bytes']} bytes live, "
        f"{report['journal_file_bytes']} bytes on disk"
    )
    for key, value in report["status"].items():
        print(f"status: {key}: {value}")


def _state(argv: Sequence[str]) -> ExitCode:
    parser = argparse.ArgumentParser(
        prog="runtools-tail state",
        description="Show or reset the daemon's checkpoints, or compact its journal.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    show = actions.add_parser(
        "show", help="per source: high-water mark and lag; per sink: backlog; journal size"
    )
    show.add_argument("--config", help=CONFIG_HELP)
    show.add_argument("--json", action="store_true", help="print JSON")
    reset = actions.add_parser(
        "reset", help="read a source again from a time (the daemon must be stopped)"
    )
    reset.add_argument("--config", help=CONFIG_HELP)
    reset.add_argument("--source", required=True, help="source name")
    reset.add_argument(
        "--since", required=True, help="a duration before now (local clock) or an ISO 8601 time"
    )
    compact = actions.add_parser(
        "compact",
        help="give the journal's free space back to the file system (the daemon must be "
        "stopped; needs free disk of about the journal's live size in the state directory)",
    )
    compact.add_argument("--config", help=CONFIG_HELP)
    args = parser.parse_args(argv)

    config = _load(args.config, parser.prog)
    if isinstance(config, ExitCode):
        return config
    journal = Journal(config.state_dir)
    if not journal.path.exists():
        return _report(
            [f"no state in {str(config.state_dir)!r}: the daemon has not run yet"], parser.prog
        )

    if args.action == "show":
        try:
            journal.open()
        except ConfigError as exc:
            return _report(exc.problems, parser.prog)
        try:
            report = _state_report(journal, config)
        finally:
            journal.close()
        if args.json:
            print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        else:
            _print_state(report)
        return ExitCode.OK

    if args.action == "compact":
        return _compact(journal, config, parser.prog)

    if args.source not in config.sources:
        return _report(
            [f"unknown source {args.source!r}; configured: {', '.join(config.sources)}"],
            parser.prog,
        )
    now_ns = time.time_ns()
    try:
        since_ns = parse_time_or_duration(args.since, now_ns)
    except ValueError as exc:
        return _report([f"--since {exc}"], parser.prog)
    if since_ns > now_ns + RESET_FUTURE_TOLERANCE_NS:
        return _report(
            [
                f"--since {format_iso(since_ns, digits=3)} is in the future (this machine's "
                f"clock reads {format_iso(now_ns, digits=3)}), so the source would deliver "
                "nothing until then: give a past time, or a duration such as 30m"
            ],
            parser.prog,
        )
    try:
        with _locked_journal(journal, config):
            journal.reset_source(
                args.source, SourceCheckpoint(since_ns, since_ns, None, MIN_WIDTH_NS).to_dict()
            )
    except ConfigError as exc:
        return _report(exc.problems, parser.prog)
    print(
        f"source {args.source}: will read again from {format_iso(since_ns, digits=3)}; "
        "the sinks receive the events since then again, also those already delivered"
    )
    return ExitCode.OK


@contextlib.contextmanager
def _locked_journal(journal: Journal, config: DaemonConfig) -> Iterator[Journal]:
    """Hold the state directory's lock with `journal` open, converted if older.

    Raises ConfigError when another process holds the lock or the journal's
    format cannot be used.
    """
    lock = StateLock(config.state_dir)
    lock.acquire()
    try:
        journal.open(upgrade=True)
        try:
            yield journal
        finally:
            journal.close()
    finally:
        lock.release()


def _compact(journal: Journal, config: DaemonConfig, prog: str) -> ExitCode:
    try:
        with _locked_journal(journal, config):
            try:
                before, after = journal.compact()
            except sqlite3.Error as exc:
                return _report(
                    [f"compacting {str(journal.path)!r} failed: {exc}; the journal is unchanged"],
                    prog,
                )
            except (ConfigError, OSError) as exc:
                return _report([f"compacting {str(journal.path)!r} failed: {exc}"], prog)
    except ConfigError as exc:
        return _report(exc.problems, prog)
    print(f"journal: {before} bytes on disk before, {after} after")
    return ExitCode.OK


# -- dead letters ---------------------------------------------------------------


async def _replay(config: DaemonConfig, sink_name: str) -> tuple[int, int]:
    """Send a sink's dead letters again; return (delivered, still dead)."""
    section = config.sinks[sink_name]
    sink = build_sinks(config)[sink_name]
    encoder = get_encoder(section.encoding)
    letters_file = DeadLetterFile(section.dead_letter_path)  # type: ignore[arg-type]
    letters = list(letters_file.read())
    journal = Journal(config.state_dir)
    journal.open(upgrade=True)
    delivered = 0
    remaining = []
    try:
        checkpoint = journal.register_sink(sink_name)
        await sink.open(checkpoint.state)
        try:
            size = batch_limits(section, type(sink)).max_events
            for start in range(0, len(letters), size):
                chunk = letters[start : start + size]
                events = []
                for letter in chunk:
                    try:
                        events.append(parse_event(letter.event))
                    except InvalidEventError:
                        remaining.append(letter)
                batch = Batch(
                    sink=sink_name,
                    events=events,
                    payloads=[encoder.encode(event) for event in events],
                    encoding=encoder.name,
                    first_seq=0,
                    last_seq=start,
                    replay_of=chunk[0].batch,
                )
                try:
                    state = await sink.send(batch)
                except SinkError as exc:
                    print(
                        f"runtools-tail dead-letters: batch {batch.key} failed: {exc}",
                        file=sys.stderr,
                    )
                    remaining.extend(letters[start:])
                    break
                journal.commit_sink_state(sink_name, state)
                delivered += len(events)
        finally:
            await sink.close()
    finally:
        journal.close()
    letters_file.replace(remaining)
    return delivered, len(remaining)


def _dead_letters(argv: Sequence[str]) -> ExitCode:
    parser = argparse.ArgumentParser(
        prog="runtools-tail dead-letters",
        description="Send a sink's dead letters again (the daemon must be stopped).",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    replay = actions.add_parser("replay", help="send the dead letters of SINK again")
    replay.add_argument("sink", help="sink name")
    replay.add_argument("--config", help=CONFIG_HELP)
    args = parser.parse_args(argv)
    configure_logging("warning")
    config = _load(args.config, parser.prog)
    if isinstance(config, ExitCode):
        return config
    section = config.sinks.get(args.sink)
    if section is None:
        return _report(
            [f"unknown sink {args.sink!r}; configured: {', '.join(config.sinks)}"], parser.prog
        )
    if section.dead_letter_path is None:
        return _report([f"sink {args.sink!r} has no dead_letter_path configured"], parser.prog)

    lock = StateLock(config.state_dir)
    try:
        lock.acquire()
    except ConfigError as exc:
        return _report(exc.problems, parser.prog)
    try:
        result: list[tuple[int, int]] = []

        async def main() -> None:
            result.append(await _replay(config, args.sink))

        code = run_main(main)
    finally:
        lock.release()
    if code != ExitCode.OK:
        return code
    delivered, remaining = result[0]
    print(f"sink {args.sink}: replayed {delivered} event(s); {remaining} remain dead-lettered")
    return ExitCode.OK if remaining == 0 else ExitCode.API_ERROR


def run(command: str, argv: Sequence[str]) -> ExitCode:
    """Run one of the daemon's commands."""
    handlers = {
        "run": _run,
        "check-config": _check_config,
        "state": _state,
        "dead-letters": _dead_letters,
    }
    return handlers[command](argv)
