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
