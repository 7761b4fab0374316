"""The benchmark harness's timing rules (curate/bench/_harness.py): known fake durations, no real timing."""

from curate.bench._harness import best_in_rounds


def test_rounds_interleave_skip_the_warm_up_and_take_each_fn_minimum():
    calls, own = [], iter([9.0, 3.0, 2.0, 5.0])  # a fn that times itself: warm-up 9.0, then 3.0, 2.0, 5.0

    def a():
        calls.append("a")

    def b():
        calls.append("b")
        return next(own)

    best = best_in_rounds({"a": a, "b": b}, 3)
    assert calls == ["a", "b"] * 4  # one warm-up round, then 3 rounds, every fn once per round, in turn
    assert best["b"] == 2.0 and 0 <= best["a"] < 1.0


def test_no_repeats_returns_the_warm_up_times():
    assert best_in_rounds({"x": lambda: 4.5}, 0) == {"x": 4.5}
