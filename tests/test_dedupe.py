from hypothesis import given, settings
from hypothesis import strategies as st

from tailer.dedupe import DedupeWindow


def test_dedupe_remembers_and_prunes_by_time() -> None:
    window = DedupeWindow()
    window.add("a", 10)
    window.add("b", 20)
    window.add("c", 30)

    assert "a" in window
    assert window.prune(20) == 1
    assert "a" not in window
    assert "b" in window
    assert len(window) == 2


def test_dedupe_size_bounded_by_time_window_not_run_time() -> None:
    window = DedupeWindow()
    for second in range(100_000):
        window.add(f"id-{second}", second)
        window.prune(second - 60)

    assert len(window) == 61


def test_dedupe_add_twice_keeps_one_entry() -> None:
    window = DedupeWindow()
    window.add("a", 10)
    window.add("a", 99)

    assert window.prune(11) == 1
    assert len(window) == 0


def test_dedupe_prunes_runs_added_out_of_order() -> None:
    window = DedupeWindow()
    window.add_sorted(["c", "d", "e"], [30, 40, 50])
    window.add_sorted(["a", "b", "f"], [10, 35, 60])  # a late run with older ids

    assert window.prune(36) == 3
    assert sorted(window.ids()) == ["d", "e", "f"]
    assert window.prune(36) == 0
    assert window.prune(61) == 3
    assert len(window) == 0


def test_dedupe_add_sorted_skips_known_ids() -> None:
    window = DedupeWindow()
    window.add_sorted(["a", "b"], [10, 20])
    window.add_sorted(["b", "c"], [25, 30])

    assert window.prune(21) == 2
    assert sorted(window.ids()) == ["c"]


def test_dedupe_add_unsorted_prunes_by_time() -> None:
    window = DedupeWindow()
    window.add_unsorted(["c", "a", "b"], [30, 10, 20])

    assert window.prune(25) == 2
    assert sorted(window.ids()) == ["c"]
    assert window.prune(31) == 1


@settings(max_examples=200, deadline=None)
@given(
    runs=st.lists(
        st.lists(st.tuples(st.integers(0, 50), st.integers(0, 100)), max_size=8), max_size=10
    ),
    horizons=st.lists(st.integers(0, 110), max_size=6),
)
def test_dedupe_matches_a_plain_dict(
    runs: list[list[tuple[int, int]]], horizons: list[int]
) -> None:
    window = DedupeWindow()
    model: dict[str, int] = {}
    padded: list[int | None] = [*horizons, *[None] * len(runs)]
    for run, horizon in zip(runs, padded[: len(runs)], strict=True):
        pairs = sorted(((f"id{number}", time_ns) for number, time_ns in run), key=lambda p: p[1])
        window.add_sorted([pair[0] for pair in pairs], [pair[1] for pair in pairs])
        for event_id, time_ns in pairs:
            model.setdefault(event_id, time_ns)
        if horizon is not None:
            expected = sum(1 for time_ns in model.values() if time_ns < horizon)
            model = {key: value for key, value in model.items() if value >= horizon}
            assert window.prune(horizon) == expected
        assert dict.fromkeys(window.ids()) == dict.fromkeys(model)
