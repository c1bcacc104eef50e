from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tailer.encodings import JsonEncoder
from tailer.event import Event, parse_event

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def test_json_exact_payload() -> None:
    raw = {
        "id": "act_01",
        "createdAt": "2026-05-10T12:00:00.123+02:00",
        "title": "Täst 🦀",
        "attributes": {"n": 1, "list": [True, None]},
    }

    payload = JsonEncoder().encode(parse_event(raw))

    assert (
        payload
        == (
            '{"id":"act_01","createdAt":"2026-05-10T12:00:00.123+02:00","title":"Täst 🦀",'
            '"attributes":{"n":1,"list":[true,null]}}'
        ).encode()
    )


def test_json_keeps_unknown_and_null_fields() -> None:
    raw = {"id": "a", "occurredAt": "2026-05-10T12:00:00Z", "newField": {"x": 1}, "title": None}

    assert orjson.loads(JsonEncoder().encode(parse_event(raw))) == raw


def test_json_escapes_line_breaks() -> None:
    raw = {"id": "a", "createdAt": "2026-05-10T12:00:00Z", "title": "one\r\ntwo\rthree\n"}

    payload = JsonEncoder().encode(parse_event(raw))

    assert payload == (
        b'{"id":"a","createdAt":"2026-05-10T12:00:00Z","title":"one\\r\\ntwo\\rthree\\n"}'
    )


def test_json_integer_beyond_64_bits() -> None:
    raw = {"id": "a", "count": 2**70}

    payload = JsonEncoder().encode(Event("a", 0, raw))

    assert json.loads(payload) == raw


def test_json_lone_surrogate() -> None:
    raw = {"id": "a", "title": "bad \ud800 text"}

    payload = JsonEncoder().encode(Event("a", 0, raw))

    assert payload == b'{"id":"a","title":"bad \\ud800 text"}'
    assert json.loads(payload) == raw


@given(raw=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=8))
def test_json_round_trips(raw: dict[str, Any]) -> None:
    payload = JsonEncoder().encode(Event("a", 0, raw))

    assert orjson.loads(payload) == raw
    assert b"\n" not in payload
    assert b"\r" not in payload
