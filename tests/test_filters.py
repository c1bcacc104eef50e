import pytest

from tailer.errors import ConfigError
from tailer.filters import MAX_QUERY_VARIANTS, QueryFilters


def test_single_values_make_one_query() -> None:
    filters = QueryFilters.from_mapping({"severity": ["error"], "thread_id": ["thr_1"]})

    assert filters.query_variants() == [{"severity": "error", "thread_id": "thr_1"}]
    assert filters.local_filters() == {}


def test_repeated_values_make_one_query_per_combination() -> None:
    filters = QueryFilters.from_mapping(
        {"severity": ["error", "warning"], "event_type": ["a", "b"], "sandbox_id": ["s"]}
    )

    assert filters.query_variants() == [
        {"sandbox_id": "s", "severity": "error", "event_type": "a"},
        {"sandbox_id": "s", "severity": "error", "event_type": "b"},
        {"sandbox_id": "s", "severity": "warning", "event_type": "a"},
        {"sandbox_id": "s", "severity": "warning", "event_type": "b"},
    ]
    assert filters.local_filters() == {}


def test_too_many_combinations_filter_locally() -> None:
    types = [f"type.{n}" for n in range(MAX_QUERY_VARIANTS + 1)]
    filters = QueryFilters.from_mapping({"event_type": types, "status": ["failed"]})

    assert filters.query_variants() == [{"status": "failed"}]
    local = filters.local_filters()
    assert local == {"eventType": frozenset(types)}
    assert QueryFilters.matches({"eventType": "type.3"}, local) is True
    assert QueryFilters.matches({"eventType": "other"}, local) is False
    assert QueryFilters.matches({}, local) is False


def test_duplicate_values_collapse() -> None:
    filters = QueryFilters.from_mapping({"severity": ["error", "error"]})

    assert filters.query_variants() == [{"severity": "error"}]


def test_invalid_values_all_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        QueryFilters.from_mapping(
            {"severity": ["fatal"], "resource_type": ["planet"], "colour": ["red"]}
        )

    problems = caught.value.problems
    assert len(problems) == 3
    assert (
        "severity has invalid value 'fatal'; allowed: info, warning, error, success" in problems[0]
    )
    assert "resource_type has invalid value 'planet'" in problems[1]
    assert "unknown filter 'colour'" in problems[2]


def test_problems_name_the_option_given() -> None:
    with pytest.raises(ConfigError) as caught:
        QueryFilters.from_mapping(
            {"resource_id": [""], "severity": ["fatal"]},
            option_names={"resource_id": "--resource-id", "severity": "--severity"},
        )

    assert caught.value.problems == [
        "--resource-id has an empty value; give a value or leave it out",
        "--severity has invalid value 'fatal'; allowed: info, warning, error, success",
    ]
