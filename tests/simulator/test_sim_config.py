"""Validation of the simulator's config models and the package's public names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import tailer.simulator
from tailer.simulator import ApiKey, FaultRates, SimulatorConfig


def test_public_names_sorted_and_exported() -> None:
    names = tailer.simulator.__all__

    assert names == sorted(names)
    assert names == [
        "ApiKey",
        "FaultRates",
        "Simulator",
        "SimulatorConfig",
        "add_simulate_arguments",
        "config_from_arguments",
    ]
    for name in names:
        assert getattr(tailer.simulator, name) is not None


def test_default_config_is_local() -> None:
    config = SimulatorConfig()

    assert config.host == "127.0.0.1"
    assert config.port == 0
    assert [api_key.key.get_secret_value() for api_key in config.keys] == ["rt_test_simulator"]
    assert config.keys[0].admin is True


def test_api_key_hidden_in_repr() -> None:
    api_key = ApiKey(key="rt_test_secret")

    assert "rt_test_secret" not in repr(api_key)
    assert "rt_test_secret" not in repr(SimulatorConfig(keys=[api_key]))


def test_api_key_user_id_canonical() -> None:
    api_key = ApiKey(key="k", user_id="6A1D4B2E8F3C4E9AB7D52C0F9E8A1B34")

    assert api_key.user_id == "6a1d4b2e-8f3c-4e9a-b7d5-2c0f9e8a1b34"


def test_api_key_frozen() -> None:
    api_key = ApiKey(key="k")

    with pytest.raises(ValidationError, match="frozen"):
        api_key.admin = False


def test_unknown_field_rejected() -> None:
    with pytest.raises(ValidationError, match="colour"):
        SimulatorConfig.model_validate({"colour": "blue"})


def test_duplicate_keys_rejected() -> None:
    with pytest.raises(ValidationError, match="keys must be unique"):
        SimulatorConfig(keys=[ApiKey(key="k"), ApiKey(key="k", admin=False)])


def test_empty_keys_rejected() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        SimulatorConfig(keys=[])


def test_exclusive_fault_rates_capped() -> None:
    FaultRates(rate_limited=0.5, server_error=0.5, slow=1.0)

    with pytest.raises(ValidationError, match=r"add up to 1\.1"):
        FaultRates(rate_limited=0.5, server_error=0.5, dropped=0.1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("default_limit", 501),
        ("late_fraction", 1.5),
        ("utc_offset_minutes", 1440),
        ("order", "random"),
        ("precision", "us"),
        ("cursor_ttl", 0),
        ("backlog", -1),
    ],
)
def test_out_of_range_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        SimulatorConfig.model_validate({field: value})

    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
