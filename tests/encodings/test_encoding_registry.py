from __future__ import annotations

from typing import get_args

import pytest

from tailer.encodings import (
    ENCODINGS,
    CefEncoder,
    EcsEncoder,
    Encoder,
    Encoding,
    JsonEncoder,
    get_encoder,
)
from tailer.errors import ConfigError
from tailer.event import parse_event

HOSTILE_RAW = {
    "id": "act_\r\n1",
    "createdAt": "2026-05-10T12:00:00Z",
    "eventType": "x|y=z\n",
    "title": "line one\r\nline two\rthree\nfour",
    "summary": "trailing backslash \\",
    "status": "failed\n",
    "severity": "error\r",
    "attributes": {"text": "a\nb\rc\r\n"},
}


def test_encodings_match_literal() -> None:
    assert ENCODINGS == ("json", "ecs", "cef")
    assert get_args(Encoding) == ENCODINGS


@pytest.mark.parametrize(
    ("name", "encoder_class", "json_payload"),
    [
        ("json", JsonEncoder, True),
        ("ecs", EcsEncoder, True),
        ("cef", CefEncoder, False),
    ],
)
def test_get_encoder_by_name(name: str, encoder_class: type, json_payload: bool) -> None:
    encoder = get_encoder(name)

    assert isinstance(encoder, encoder_class)
    assert isinstance(encoder, Encoder)
    assert encoder.name == name
    assert encoder.json_payload is json_payload


@pytest.mark.parametrize("name", ["xml", "", "JSON", " json"])
def test_get_encoder_unknown_name(name: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        get_encoder(name)

    message = str(excinfo.value)
    assert repr(name) in message
    for allowed in ENCODINGS:
        assert allowed in message
    assert message == f"unknown encoding {name!r}, expected one of: json, ecs, cef"


@pytest.mark.parametrize("name", ENCODINGS)
def test_payload_has_no_line_break(name: str) -> None:
    payload = get_encoder(name).encode(parse_event(HOSTILE_RAW))

    assert b"\n" not in payload
    assert b"\r" not in payload
    payload.decode("utf-8")
